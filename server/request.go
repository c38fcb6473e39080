package server

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/encoding"
	protoenc "google.golang.org/grpc/encoding/proto"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/haa-dev/haa/node/config"
)

// Every request is checked before a handler sees it. One that does not
// decode is InvalidArgument (grpc-go would answer Internal). One of this
// API (haa.v1) carrying fields this haad does not know, at any depth, is
// InvalidArgument too, naming where: served, the fields would be dropped
// silently (a configuration applied without them, its hash changed though
// nothing did). Health and reflection requests may carry unknown fields:
// their newer clients are not ours to refuse.

// strict reports whether method's requests must not carry unknown fields.
func strict(method string) bool { return strings.HasPrefix(method, "/haa.v1.") }

// codec is the server's "proto" codec: the standard one, except that a
// request whose bytes do not decode is not an error (grpc-go answers a
// codec's error with Internal before any interceptor runs) but an empty
// message marked undecodable, which checkRequest refuses.
type codec struct{ encoding.CodecV2 }

func newCodec() codec { return codec{encoding.GetCodecV2(protoenc.Name)} }

func (codec) Name() string { return protoenc.Name }

func (c codec) Unmarshal(data mem.BufferSlice, v any) error {
	err := c.CodecV2.Unmarshal(data, v)
	m, ok := v.(proto.Message)
	if err == nil || !ok {
		return err
	}
	proto.Reset(m)
	m.ProtoReflect().SetUnknown(markUndecodable(err))
	return nil
}

// badWireType marks an undecodable request in its unknown fields: wire
// type 7 does not exist, so no message that decoded carries it.
const badWireType protowire.Type = 7

func markUndecodable(err error) []byte {
	return append(protowire.AppendTag(nil, 1, badWireType), err.Error()...)
}

// decodeFailure returns why a request did not decode, from its mark.
func decodeFailure(unknown []byte) (string, bool) {
	num, typ, n := protowire.ConsumeTag(unknown)
	if n < 0 || num != 1 || typ != badWireType {
		return "", false
	}
	return string(unknown[n:]), true
}

// checkRequest refuses a request that did not decode or, if strict, that
// carries unknown fields.
func checkRequest(req any, strict bool) error {
	m, ok := req.(proto.Message)
	if !ok {
		return nil
	}
	r := m.ProtoReflect()
	if why, bad := decodeFailure(r.GetUnknown()); bad {
		return undecodable(string(r.Descriptor().FullName()), why)
	}
	if !strict {
		return nil
	}
	if fields := findUnknown(r, "", nil); len(fields) > 0 {
		return unknownFields(fields)
	}
	return nil
}

// findUnknown appends where m and the messages in it carry unknown fields:
// the path in JSON names (config.instances[0], document.instances[0].overrides.lb2;
// "" for the request itself) and which fields.
func findUnknown(m protoreflect.Message, path string, out []config.FieldError) []config.FieldError {
	if u := m.GetUnknown(); len(u) > 0 {
		out = append(out, config.FieldError{Path: path, Msg: describeUnknown(u, path == "")})
	}
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		p := fd.JSONName()
		if path != "" {
			p = path + "." + p
		}
		switch {
		case fd.IsList():
			if fd.Message() == nil {
				break
			}
			l := v.List()
			for i := range l.Len() {
				out = findUnknown(l.Get(i).Message(), fmt.Sprintf("%s[%d]", p, i), out)
			}
		case fd.IsMap():
			if fd.MapValue().Message() == nil {
				break
			}
			mv := v.Map()
			keys := make([]protoreflect.MapKey, 0, mv.Len())
			mv.Range(func(k protoreflect.MapKey, _ protoreflect.Value) bool {
				keys = append(keys, k)
				return true
			})
			slices.SortFunc(keys, func(a, b protoreflect.MapKey) int { return strings.Compare(a.String(), b.String()) })
			for _, k := range keys {
				out = findUnknown(mv.Get(k).Message(), p+"."+k.String(), out)
			}
		case fd.Message() != nil:
			out = findUnknown(v.Message(), p, out)
		}
		return true
	})
	return out
}

// describeUnknown names the fields of unknown (wire format) and what to do.
func describeUnknown(unknown []byte, top bool) string {
	const most = 8 // numbers named
	var nums []string
	more := false
	for len(unknown) > 0 {
		num, _, n := protowire.ConsumeField(unknown)
		if n < 0 {
			break
		}
		unknown = unknown[n:]
		if s := fmt.Sprint(num); !slices.Contains(nums, s) {
			if len(nums) == most {
				more = true
				break
			}
			nums = append(nums, s)
		}
	}
	list := strings.Join(nums, ", ")
	if more {
		list += " and more"
	}
	what, it := "unknown field "+list, "it"
	if len(nums) > 1 {
		what, it = "unknown fields "+list, "them"
	}
	if top {
		what += " in the request"
	}
	return what + ": this haad does not know " + it + " (newer haactl?): upgrade haad, or leave " + it + " out"
}

// checkUnary refuses a unary call's request before the handler sees it.
func checkUnary(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
	if err := checkRequest(req, strict(info.FullMethod)); err != nil {
		return nil, err
	}
	return h(ctx, req)
}

// checkStream refuses each request of a stream as the handler receives it.
func checkStream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) error {
	return h(srv, &checkedStream{ServerStream: ss, strict: strict(info.FullMethod)})
}

type checkedStream struct {
	grpc.ServerStream
	strict bool
}

func (s *checkedStream) RecvMsg(m any) error {
	if err := s.ServerStream.RecvMsg(m); err != nil {
		return err
	}
	return checkRequest(m, s.strict)
}
