package server

import (
	"context"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// APIMetrics counts the API's calls as haa_api_requests_total{method,
// code}: the gRPC full method ("/haa.v1.AgentService/GetNode") and the
// status code's name ("OK", "NotFound"...).
type APIMetrics struct {
	requests *prometheus.CounterVec
}

// NewAPIMetrics registers the API's metrics on reg.
func NewAPIMetrics(reg prometheus.Registerer) (*APIMetrics, error) {
	m := &APIMetrics{requests: prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "haa_api_requests_total",
		Help: "API calls handled, by gRPC method and status code.",
	}, []string{"method", "code"})}
	if err := reg.Register(m.requests); err != nil {
		return nil, err
	}
	return m, nil
}

func (m *APIMetrics) count(method string, err error) {
	m.requests.WithLabelValues(method, status.Code(err).String()).Inc()
}

// Unary counts unary calls.
func (m *APIMetrics) Unary() grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		resp, err := h(ctx, req)
		m.count(info.FullMethod, err)
		return resp, err
	}
}

// Stream counts streaming calls when they end.
func (m *APIMetrics) Stream() grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) error {
		err := h(srv, ss)
		m.count(info.FullMethod, err)
		return err
	}
}

// register starts every method of the server's services at zero with code
// OK, so the series exist before the first call.
func (m *APIMetrics) register(gs *grpc.Server) {
	for svc, info := range gs.GetServiceInfo() {
		for _, meth := range info.Methods {
			m.requests.WithLabelValues("/"+svc+"/"+meth.Name, codes.OK.String())
		}
	}
}

// ListenOption configures Listen.
type ListenOption func(*Listeners)

// WithAPIMetrics counts every call of every listener in m (outermost: a
// call refused before its handler, e.g. for an unknown field, counts too; a
// client refused in the TLS handshake makes no call).
func WithAPIMetrics(m *APIMetrics) ListenOption {
	return func(l *Listeners) { l.metrics = m }
}
