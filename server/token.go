package server

import (
	"net/http"
	"strings"
)

// RequireToken wraps h so that every request must carry "Authorization:
// Bearer <token>" (compared in constant time), for other endpoints a
// program serves beside the API, such as metrics. A request without it gets
// 401 and reaches nothing.
func RequireToken(h http.Handler, token string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !checkToken(r, token) {
			w.Header().Set("WWW-Authenticate", `Bearer realm="evstore"`)
			http.Error(w, "missing or wrong bearer token", http.StatusUnauthorized)
			return
		}
		h.ServeHTTP(w, r)
	})
}

// LoopbackDefault is addr with a bare port (":8080") bound to 127.0.0.1:
// what listens on TCP is local unless told otherwise.
func LoopbackDefault(addr string) string {
	if strings.HasPrefix(addr, ":") {
		return "127.0.0.1" + addr
	}
	return addr
}
