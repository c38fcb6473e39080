package fifo

import (
	"context"
	"slices"
	"testing"
	"testing/synctest"
)

func TestOrderAndWake(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		q := New[int]()
		ctx, cancel := context.WithCancel(context.Background())
		got := make(chan []int)
		go func() {
			var all []int
			for len(all) < 100 {
				items, ok := q.Wait(ctx)
				if !ok {
					break
				}
				all = append(all, items...)
			}
			got <- all
		}()
		for i := range 100 {
			q.Push(i)
		}
		all := <-got
		if len(all) != 100 || !slices.IsSorted(all) {
			t.Fatalf("got %v", all)
		}
		cancel()
		if _, ok := q.Wait(ctx); ok {
			t.Fatal("Wait after the context ended")
		}
	})
}
