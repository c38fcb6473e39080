package main

import (
	"crypto/rand"
	"encoding/base64"
	"fmt"

	"github.com/spf13/cobra"
)

// keyBytes is the size of a new gossip key: AES-256.
const keyBytes = 32

func newKeygenCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "keygen",
		Short: "Print a new gossip encryption key",
		Long: `Print a new gossip encryption key: base64 of 32 random bytes (AES-256-GCM),
the format of the file gossip.keyFile names in haad's configuration. Every
node of a fleet needs the same key, in a file only root can read. It talks
to no agent.`,
		Example: `  (umask 077; haactl keygen > /etc/haa/gossip.key)
  # then copy /etc/haa/gossip.key to every node (mode 0600)`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(*cobra.Command, []string) error {
			b := make([]byte, keyBytes)
			if _, err := rand.Read(b); err != nil {
				return failf("no random bytes: %v", err)
			}
			_, err := fmt.Fprintln(a.out, base64.StdEncoding.EncodeToString(b))
			return err
		},
	}
}
