package healthd

import (
	"bytes"
	"io"
	"net/http"
	"testing"
)

// FuzzDecodeHealthAnswer feeds arbitrary gRPC answers (body, grpc-status,
// grpc-message) to the grpc.health.v1 decoder: it must never panic, and a
// decoded status must come from a well-formed message.
func FuzzDecodeHealthAnswer(f *testing.F) {
	f.Add([]byte{0, 0, 0, 0, 2, 0x08, 0x01}, "0", "")
	f.Add([]byte{0, 0, 0, 0, 2, 0x08, 0x02}, "0", "")
	f.Add([]byte{0, 0, 0, 0, 0}, "0", "")
	f.Add([]byte{}, "5", "unknown%20service")
	f.Add([]byte{1, 0, 0, 0, 2, 0x08, 0x01}, "0", "")
	f.Add([]byte{0, 0, 0, 0, 4, 0x12, 0x02, 'h', 'i'}, "0", "")
	f.Add([]byte{0, 0xff, 0xff, 0xff, 0xff}, "x", "%zz")
	f.Fuzz(func(t *testing.T, body []byte, status, msg string) {
		h := http.Header{"Content-Type": {"application/grpc"}}
		tr := http.Header{"Grpc-Status": {status}, "Grpc-Message": {msg}}
		s, err := decodeHealthAnswer(200, h, tr, body)
		if err == nil {
			m, uerr := unframe(body)
			if uerr != nil {
				t.Fatalf("status %d from an answer that does not unframe: %v", s, uerr)
			}
			if _, derr := decodeHealthResponse(m); derr != nil {
				t.Fatalf("status %d from a message that does not decode: %v", s, derr)
			}
		}
		decodeHealthAnswer(200, h, http.Header{}, body) // trailers-only path
	})
}

// pipeRW is a server conversation: reads come from the fuzzer's bytes,
// writes are discarded.
type pipeRW struct {
	r io.Reader
}

func (p *pipeRW) Read(b []byte) (int, error)  { return p.r.Read(b) }
func (p *pipeRW) Write(b []byte) (int, error) { return len(b), nil }

// FuzzH2Ping plays arbitrary bytes as the server's side of an H2PING
// conversation: the frame reader must never panic or allocate more than
// one frame, and success needs the PING ACK with our data.
func FuzzH2Ping(f *testing.F) {
	data := [8]byte{1, 2, 3, 4, 5, 6, 7, 8}
	ack := appendH2Frame(nil, h2FrameSettings, 0, 0, nil)
	ack = appendH2Frame(ack, h2FrameSettings, h2FlagAck, 0, nil)
	ack = appendH2Frame(ack, h2FramePing, h2FlagAck, 0, data[:])
	f.Add(ack)
	f.Add(appendH2Frame(nil, h2FrameGoAway, 0, 0, []byte{0, 0, 0, 0, 0, 0, 0, 1, 'x'}))
	f.Add(appendH2Frame(nil, h2FramePing, 0, 0, data[:]))
	f.Add([]byte("HTTP/1.1 400 Bad Request\r\n\r\n"))
	f.Add([]byte{0xff, 0xff, 0xff, 0x6, 0, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, in []byte) {
		err := h2Ping(&pipeRW{r: bytes.NewReader(in)}, data)
		if err == nil && !bytes.Contains(in, data[:]) {
			t.Fatalf("success without our PING data in % x", in)
		}
	})
}
