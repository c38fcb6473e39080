package server

import (
	"context"
	"log/slog"

	"github.com/haa-dev/haa/node/fleet"
	haav1 "github.com/haa-dev/haa/proto/haa/v1"

	"github.com/haa-dev/haa/node"
)

// FleetCore is what FleetService needs of the agent: its view of the fleet
// and the apply of a fleet document; *node.Agent implements it.
type FleetCore interface {
	FleetStatus() fleet.Status
	ApplyFleet(ctx context.Context, doc *haav1.Fleet, opts node.FleetApplyOptions) (node.FleetApplyResult, error)
}

// Fleet implements haav1.FleetServiceServer over a FleetCore.
type Fleet struct {
	haav1.UnimplementedFleetServiceServer

	core FleetCore
	errs *Server // for the error mapping
}

var _ haav1.FleetServiceServer = (*Fleet)(nil)

// NewFleet returns the FleetService of core. A nil log means slog.Default().
func NewFleet(core FleetCore, log *slog.Logger) *Fleet {
	if log == nil {
		log = slog.Default()
	}
	return &Fleet{core: core, errs: &Server{log: log}}
}

// GetFleet returns the fleet as this node sees it through gossip.
func (f *Fleet) GetFleet(context.Context, *haav1.GetFleetRequest) (*haav1.GetFleetResponse, error) {
	return fleetProto(f.core.FleetStatus()), nil
}

// ApplyFleet stores a fleet document and runs this node's part of it.
func (f *Fleet) ApplyFleet(ctx context.Context, req *haav1.ApplyFleetRequest) (*haav1.ApplyFleetResponse, error) {
	if req.GetDocument() == nil {
		return nil, invalidArgument("document", "required: the fleet document (kind: Fleet)")
	}
	// As ApplyConfig: a client that goes away does not cut the apply short.
	res, err := f.core.ApplyFleet(context.WithoutCancel(ctx), req.GetDocument(), node.FleetApplyOptions{
		DryRun: req.GetDryRun(), Hold: req.GetHold(), Source: "api",
	})
	out := &haav1.ApplyFleetResponse{Node: res.Node, Plan: res.Plan.Proto(), Generation: res.Generation, Hash: res.Hash,
		FleetGeneration: res.FleetGeneration, Applied: res.Applied, Instances: res.Instances}
	if err != nil && res.Applied {
		return nil, f.errs.partial(err, out, "fleet generation %d applied, but", res.FleetGeneration)
	}
	if err != nil {
		return nil, f.errs.status(err)
	}
	return out, nil
}
