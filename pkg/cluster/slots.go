package cluster

import (
	"strconv"
	"strings"
	"sync"
)

var crc16tab = func() (t [256]uint16) {
	for i := range t {
		crc := uint16(i) << 8
		for j := 0; j < 8; j++ {
			if crc&0x8000 != 0 {
				crc = crc<<1 ^ 0x1021
			} else {
				crc <<= 1
			}
		}
		t[i] = crc
	}
	return t
}()

func crc16(s string) uint16 {
	var crc uint16
	for i := 0; i < len(s); i++ {
		crc = crc<<8 ^ crc16tab[byte(crc>>8)^s[i]]
	}
	return crc
}

// Slot returns the hash slot of a key, honouring {hash tags}.
func Slot(key string) int {
	if s := strings.IndexByte(key, '{'); s >= 0 {
		if e := strings.IndexByte(key[s+1:], '}'); e > 0 {
			key = key[s+1 : s+1+e]
		}
	}
	return int(crc16(key) % SlotCount)
}

var (
	slotKeysOnce sync.Once
	slotKeys     [SlotCount]string
)

// KeyForSlot returns a short key that hashes to slot, to address a slot through go-redis's
// key-based routing.
func KeyForSlot(slot int) string {
	slotKeysOnce.Do(func() {
		left := SlotCount
		for i := 0; left > 0; i++ {
			k := strconv.Itoa(i)
			if s := Slot(k); slotKeys[s] == "" {
				slotKeys[s] = k
				left--
			}
		}
	})
	return slotKeys[slot]
}
