// Package pace lets a long computation on the apply path give way now and
// then: haad runs on small machines (two cores), where an apply of tens of
// thousands of virtual servers would otherwise hold a processor for up to
// the Go scheduler's 10 ms time slice at a time, and the API's readers and
// the VRRP runners would wait behind it.
package pace

import (
	"runtime"
	"time"
)

// Slice is how long a computation runs between two yields.
const Slice = 500 * time.Microsecond

// Pacer yields the processor every Slice. The zero value is ready; use
// one per computation (it is not safe for concurrent use).
type Pacer struct{ next time.Time }

// Yield gives way to the other goroutines if the computation has run for
// Slice since it last did. It is cheap enough to call per item.
func (p *Pacer) Yield() {
	now := time.Now()
	if p.next.IsZero() {
		p.next = now.Add(Slice)
		return
	}
	if now.Before(p.next) {
		return
	}
	runtime.Gosched()
	p.next = time.Now().Add(Slice)
}
