package cluster_test

import (
	"fmt"
	"log"

	"github.com/rconn-dev/redis-connection-operator/pkg/cluster"
)

// A static node address map (node-redis nodeAddressMap as an object): announced addresses it
// has no entry for are dialed as announced.
func ExampleStaticMap() {
	m, err := cluster.StaticMap(map[string]string{"198.18.0.7:6379": "127.0.0.1:16007"})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(m(cluster.Address{Host: "198.18.0.7", Port: 6379}))
	fmt.Println(m(cluster.Address{Host: "198.18.0.8", Port: 6379}))
	// Output:
	// 127.0.0.1:16007 true
	// :0 false
}
