package client

import (
	"errors"
	"testing"
	"time"
)

// A handler that falls behind costs a bounded queue: the events beyond it are dropped, counted,
// and reported once the queue has room.
func TestDispatcherQueueIsBounded(t *testing.T) {
	d := newDispatcher()
	c := &Client{events: d}
	release := make(chan struct{})
	got := make(chan Event, 4*MaxQueuedEvents)
	d.add(func(e Event) {
		<-release
		got <- e
	})
	const emitted = 3 * MaxQueuedEvents
	for range emitted {
		d.emit(Event{Type: EventConnect})
	}
	d.mu.Lock()
	queued := len(d.queue)
	d.mu.Unlock()
	if queued > MaxQueuedEvents {
		t.Fatalf("%d events queued, want at most %d", queued, MaxQueuedEvents)
	}
	dropped := c.DroppedEvents()
	if dropped == 0 {
		t.Fatal("no event was counted as dropped")
	}
	close(release)
	deadline := time.After(10 * time.Second)
	for delivered := 0; ; {
		select {
		case e := <-got:
			if e.Type == EventError && errors.Is(e.Err, ErrEventsDropped) {
				if delivered+1+int(dropped) < emitted {
					t.Fatalf("%d delivered + %d dropped < %d emitted", delivered+1, dropped, emitted)
				}
				d.close()
				d.wait()
				return
			}
			delivered++
		case <-deadline:
			t.Fatal("the dropped events were never reported")
		}
	}
}
