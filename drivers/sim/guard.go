package sim

import (
	"encoding/json"
	"mime"
	"net"
	"net/http"
	"strings"
)

// guard protects a sim server listening on a socket from the browser of the
// person running it: a web page may send requests to 127.0.0.1 (a "simple"
// text/plain POST needs no permission) and, through DNS rebinding, read the
// answers under its own host name. So a request with a body must say
// Content-Type: application/json (which a cross-site page cannot send without a
// CORS preflight this server never answers), the Host header must name a
// loopback address unless the server was exposed on purpose, and cross-origin
// browser requests are refused (Sec-Fetch-Site / Origin).
func guard(h http.Handler, anyHost bool) http.Handler {
	cop := http.NewCrossOriginProtection()
	return cop.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !anyHost && !loopbackHost(r.Host) {
			writeGuardError(w, http.StatusMisdirectedRequest, "Host "+r.Host+" is not a loopback address: the sim answers requests to 127.0.0.1, [::1] or localhost only")
			return
		}
		if r.ContentLength != 0 && r.Body != nil && r.Body != http.NoBody {
			mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
			if err != nil || mt != "application/json" {
				writeGuardError(w, http.StatusUnsupportedMediaType, "a request body needs Content-Type: application/json")
				return
			}
		}
		h.ServeHTTP(w, r)
	}))
}

func loopbackHost(hostport string) bool {
	host := hostport
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		host = h
	}
	host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func writeGuardError(w http.ResponseWriter, status int, msg string) {
	b, _ := json.Marshal(ErrorResponse{Error: msg, Kind: KindBadRequest})
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}
