package dnsd

import (
	"sort"
	"strings"

	"github.com/miekg/dns"
)

// trim fits resp to what the client can take, as Consul does, but sets
// the TC bit whenever UDP answers were cut (unless SilentTrim), so
// resolvers retry over TCP:
//
//   - UDP without EDNS0: at most UDPAnswerLimit answers and 512 bytes;
//   - UDP with EDNS0: the client's advertised size (at least 512);
//   - TCP: 64 KiB.
//
// Additional records are kept only for SRV targets still answered.
func (d *Daemon) trim(req, resp *dns.Msg, tcp bool) {
	maxSize := dns.MaxMsgSize
	opt := req.IsEdns0()
	if !tcp {
		maxSize = dns.MinMsgSize
		if opt != nil && int(opt.UDPSize()) > maxSize {
			maxSize = int(opt.UDPSize())
		}
	}
	n := len(resp.Answer)
	all := resp.Extra
	if !tcp && opt == nil && n > d.c.UDPAnswerLimit {
		resp.Answer = resp.Answer[:d.c.UDPAnswerLimit]
		resp.Extra = syncExtra(resp.Answer, all)
	}
	if resp.Len() > maxSize {
		answers := resp.Answer
		// The largest count of answers that fits.
		k := sort.Search(len(answers)+1, func(k int) bool {
			resp.Answer = answers[:k]
			resp.Extra = syncExtra(resp.Answer, all)
			return resp.Len() > maxSize
		}) - 1
		k = max(k, 0)
		resp.Answer = answers[:k]
		resp.Extra = syncExtra(resp.Answer, all)
		if resp.Len() > maxSize {
			resp.Extra = onlyOPT(resp.Extra)
		}
	}
	if len(resp.Answer) < n && !tcp && !d.c.SilentTrim {
		resp.Truncated = true
	}
}

// syncExtra keeps the Additional records that belong to the answers: for
// SRV answers, only the addresses of their targets; the OPT record
// always; anything else as long as some answer remains.
func syncExtra(answer, extra []dns.RR) []dns.RR {
	targets := map[string]bool{}
	srv := false
	for _, rr := range answer {
		if s, ok := rr.(*dns.SRV); ok {
			srv = true
			targets[strings.ToLower(s.Target)] = true
		}
	}
	out := make([]dns.RR, 0, len(extra))
	for _, rr := range extra {
		switch {
		case rr.Header().Rrtype == dns.TypeOPT:
			out = append(out, rr)
		case srv && targets[strings.ToLower(rr.Header().Name)]:
			out = append(out, rr)
		case !srv && len(answer) > 0:
			out = append(out, rr)
		}
	}
	return out
}

// onlyOPT drops every Additional record but the OPT.
func onlyOPT(extra []dns.RR) []dns.RR {
	var out []dns.RR
	for _, rr := range extra {
		if rr.Header().Rrtype == dns.TypeOPT {
			out = append(out, rr)
		}
	}
	return out
}
