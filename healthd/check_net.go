package healthd

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"time"

	"github.com/consort-io/consort/pkg/structs"
)

// tcpCheck connects to a TCP address: passing when the connection is
// accepted ("TCP connect <addr>: Success"), else critical with the dial
// error, as Consul's.
type tcpCheck struct {
	addr    string
	timeout time.Duration
}

func newTCPCheck(t *structs.CheckType, timeout time.Duration) *tcpCheck {
	return &tcpCheck{addr: t.TCP, timeout: timeout}
}

func (c *tcpCheck) run(ctx context.Context) (string, string) {
	d := net.Dialer{Timeout: c.timeout}
	conn, err := d.DialContext(ctx, "tcp", c.addr)
	if err != nil {
		return structs.HealthCritical, err.Error()
	}
	conn.Close()
	return structs.HealthPassing, fmt.Sprintf("TCP connect %s: Success", c.addr)
}

// udpCheck sends an empty datagram to a UDP address and waits up to the
// timeout for an answer. As Consul's: an answer or silence is passing
// ("UDP connect <addr>: Success"); an error, such as the ICMP port
// unreachable the kernel turns into "connection refused", is critical.
type udpCheck struct {
	addr    string
	timeout time.Duration
}

func newUDPCheck(t *structs.CheckType, timeout time.Duration) *udpCheck {
	return &udpCheck{addr: t.UDP, timeout: timeout}
}

func (c *udpCheck) run(ctx context.Context) (string, string) {
	success := fmt.Sprintf("UDP connect %s: Success", c.addr)
	d := net.Dialer{Timeout: c.timeout}
	conn, err := d.DialContext(ctx, "udp", c.addr)
	if err != nil {
		return structs.HealthCritical, err.Error()
	}
	defer conn.Close()
	deadline := time.Now().Add(c.timeout)
	if dl, ok := ctx.Deadline(); ok && dl.Before(deadline) {
		deadline = dl
	}
	conn.SetDeadline(deadline)
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Now()) })
	defer stop()
	if _, err := conn.Write(nil); err != nil {
		return structs.HealthCritical, err.Error()
	}
	var b [1]byte
	if _, err := conn.Read(b[:]); err != nil {
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return structs.HealthPassing, success
		}
		return structs.HealthCritical, err.Error()
	}
	return structs.HealthPassing, success
}
