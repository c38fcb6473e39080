package nft

import (
	"context"
	"fmt"

	"github.com/google/nftables"

	"github.com/haa-dev/haa/node/lvs"
)

// Inspect reads the virtual servers of the haa_lvs table, as Read does,
// without opening a Backend (New deletes a leftover table): for tests and
// tools that look at what a running agent programmed. WithNetNS reads
// another namespace's table. No table is an empty State.
func Inspect(ctx context.Context, opts ...Option) (lvs.State, error) {
	cfg := nftConfig{netns: -1}
	for _, o := range opts {
		o(&cfg)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var copts []nftables.ConnOption
	if cfg.netns >= 0 {
		copts = append(copts, nftables.WithNetNSFd(cfg.netns))
	}
	conn, err := nftables.New(copts...)
	if err != nil {
		return nil, fmt.Errorf("nftables: %w", err)
	}
	n := &Backend{netns: -1, read: conn}
	snap, err := n.readLocked()
	return snap.state, err
}
