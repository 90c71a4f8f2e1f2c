package desk

import (
	"bufio"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"strings"

	"go.uber.org/zap"
)

// The desk's guard: every request is checked before any page sees it.
//
//   - Host: a loopback name (localhost, 127.0.0.0/8, ::1) or one of Config.Hosts. A DNS-rebinding
//     page reaches the desk under its own name (Host: rebind.evil.example), so it is refused
//     before it can read a page, the form's token or a report.
//   - Who: the operator the audit trail records is who the request authenticated as: the name of
//     the token it carried (Config.Tokens; KNETRECON_DESK_TOKEN's operator is "desk"), or the
//     header an authenticating proxy sets (Config.OperatorHeader, only when configured). With
//     neither configured (a loopback desk), every operator is "desk". A basic-auth user name is
//     never trusted: only its password is read, as a token.

// operatorKey keys the authenticated operator in a request's context.
type operatorKey struct{}

// DefaultOperator is the operator recorded for KNETRECON_DESK_TOKEN and for an open loopback desk.
const DefaultOperator = "desk"

// operatorName is what a token file may name an operator, and what a proxy's header may say.
var operatorName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._@+-]{0,63}$`)

// ReadTokens reads per-operator tokens from a file of lines "name:token" (blank lines and lines
// starting with # skipped). Errors name the file and line, never a token.
func ReadTokens(path string) (map[string]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("KNETRECON_DESK_TOKENS_FILE: %w", err)
	}
	defer f.Close()
	tokens := map[string]string{}
	s := bufio.NewScanner(f)
	for n := 1; s.Scan(); n++ {
		line := strings.TrimSpace(s.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		name, token, ok := strings.Cut(line, ":")
		name, token = strings.TrimSpace(name), strings.TrimSpace(token)
		switch {
		case !ok || token == "":
			return nil, fmt.Errorf("KNETRECON_DESK_TOKENS_FILE %s line %d: want name:token", path, n)
		case !operatorName.MatchString(name):
			return nil, fmt.Errorf("KNETRECON_DESK_TOKENS_FILE %s line %d: operator name %q: letters, digits and . _ @ + - only", path, n, name)
		case len(token) < 16:
			return nil, fmt.Errorf("KNETRECON_DESK_TOKENS_FILE %s line %d: %s's token is shorter than 16 characters", path, n, name)
		case tokens[name] != "":
			return nil, fmt.Errorf("KNETRECON_DESK_TOKENS_FILE %s line %d: %s named twice", path, n, name)
		}
		tokens[name] = token
	}
	if err := s.Err(); err != nil {
		return nil, fmt.Errorf("KNETRECON_DESK_TOKENS_FILE %s: %w", path, err)
	}
	if len(tokens) == 0 {
		return nil, fmt.Errorf("KNETRECON_DESK_TOKENS_FILE %s: no name:token line", path)
	}
	return tokens, nil
}

// ParseHosts reads KNETRECON_DESK_HOSTS: a comma-separated list of host or host:port.
func ParseHosts(s string) ([]string, error) {
	var hosts []string
	for _, h := range strings.Split(s, ",") {
		h = strings.ToLower(strings.TrimSpace(h))
		if h == "" {
			continue
		}
		if strings.ContainsAny(h, "/@ ") || strings.Contains(h, "://") {
			return nil, fmt.Errorf("KNETRECON_DESK_HOSTS: %q: want host or host:port", h)
		}
		hosts = append(hosts, h)
	}
	return hosts, nil
}

// hostOK reports whether a request's Host is the desk's own: a loopback name, or listed (an
// entry without a port allows any port).
func (d *Desk) hostOK(hostport string) bool {
	hostport = strings.ToLower(hostport)
	host, _, err := net.SplitHostPort(hostport)
	if err != nil {
		host = strings.Trim(hostport, "[]")
	}
	if host == "localhost" {
		return true
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
		return true
	}
	for _, h := range d.cfg.Hosts {
		if h == hostport || h == host {
			return true
		}
	}
	return false
}

// authenticate names the operator of a request; ok is false when the desk asks for credentials
// and the request has none that match.
func (d *Desk) authenticate(r *http.Request) (who string, ok bool) {
	if h := d.cfg.OperatorHeader; h != "" {
		if v := strings.TrimSpace(r.Header.Get(h)); v != "" {
			return v, operatorName.MatchString(v)
		}
	}
	if len(d.cfg.Tokens) == 0 {
		return DefaultOperator, d.cfg.OperatorHeader == ""
	}
	_, given, basic := r.BasicAuth()
	if !basic {
		var found bool
		given, found = strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !found {
			return "", false
		}
	}
	// Compared in constant time, every token each time: the time taken says nothing of which
	// token, or how much of one, matched.
	g := sha256.Sum256([]byte(given))
	for _, name := range d.tokenNames {
		t := sha256.Sum256([]byte(d.cfg.Tokens[name]))
		if subtle.ConstantTimeCompare(g[:], t[:]) == 1 && who == "" {
			who = name
		}
	}
	return who, who != ""
}

// guard refuses a request for another host or without credentials, and puts the operator in
// the request's context for the handlers (who).
func (d *Desk) guard(next http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !d.hostOK(r.Host) {
			d.cfg.Log.Warn("desk request refused: not the desk's host (KNETRECON_DESK_HOSTS)", zap.String("host", r.Host))
			http.Error(w, "this desk answers only on a loopback name or a host listed in KNETRECON_DESK_HOSTS", http.StatusMisdirectedRequest)
			return
		}
		who, ok := d.authenticate(r)
		if !ok {
			if len(d.cfg.Tokens) > 0 {
				w.Header().Set("WWW-Authenticate", `Basic realm="knetrecon desk"`)
			}
			msg := "the desk needs an operator's token (KNETRECON_DESK_TOKEN or KNETRECON_DESK_TOKENS_FILE) as the basic-auth password or a bearer token"
			if d.cfg.OperatorHeader != "" {
				msg = "the desk needs the operator named in " + d.cfg.OperatorHeader + " by the authenticating proxy, or an operator's token"
			}
			http.Error(w, msg, http.StatusUnauthorized)
			return
		}
		next(w, r.WithContext(context.WithValue(r.Context(), operatorKey{}, who)))
	})
}

// who is the operator a request authenticated as (see guard).
func who(r *http.Request) string {
	if w, ok := r.Context().Value(operatorKey{}).(string); ok && w != "" {
		return w
	}
	return DefaultOperator
}

// localPath returns back when it is a path on this desk, else "/": never another site
// (//evil, /\evil, a scheme, a host) and nothing a browser would read as one.
func localPath(back string) string {
	if !strings.HasPrefix(back, "/") || strings.HasPrefix(back, "//") || strings.ContainsAny(back, "\\\r\n\t") {
		return "/"
	}
	u, err := url.Parse(back)
	if err != nil || u.Scheme != "" || u.Host != "" || u.User != nil || !strings.HasPrefix(u.Path, "/") || strings.HasPrefix(u.Path, "//") {
		return "/"
	}
	return back
}

// sameOrigin refuses a browser request whose Origin (or Referer) is another site; the guard has
// already made sure Host is the desk's own.
func sameOrigin(r *http.Request) bool {
	for _, h := range []string{r.Header.Get("Origin"), r.Header.Get("Referer")} {
		if h == "" {
			continue
		}
		u, err := url.Parse(h)
		return err == nil && strings.EqualFold(u.Host, r.Host)
	}
	return true
}
