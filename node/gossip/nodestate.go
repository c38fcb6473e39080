package gossip

import (
	"time"
	"unsafe"

	"github.com/hashicorp/memberlist"
)

// mlNodeState mirrors memberlist v0.7.0's unexported nodeState, whose first
// field is the Node it passes to the EventDelegate.
//
// memberlist never updates Node.State: nodeState has its own State field
// that shadows it, so the Node given to NotifyLeave always says alive. Only
// nodeState.State tells a member that left (its own dead message) from one
// that failed. It is read only inside EventDelegate calls, which memberlist
// makes with its node lock held. TestMembership fails if a memberlist
// upgrade changes this layout.
type mlNodeState struct {
	memberlist.Node
	Incarnation uint32
	State       memberlist.NodeStateType
	StateChange time.Time
}

// departedState is memberlist's state of n (StateDead or StateLeft) in
// NotifyLeave; anything unexpected counts as dead.
func departedState(n *memberlist.Node) memberlist.NodeStateType {
	st := (*mlNodeState)(unsafe.Pointer(n)).State
	if st == memberlist.StateLeft {
		return memberlist.StateLeft
	}
	return memberlist.StateDead
}
