package server

import (
	"io/fs"
	"net/http"
)

// ServeUI mounts the web UI at /ui/ and sends / there. The UI is static;
// its data comes from the API, under the same access control.
func (s *Server) ServeUI(assets fs.FS) {
	s.Handle("GET /ui/", http.StripPrefix("/ui/", http.FileServerFS(assets)), Public())
	s.Handle("GET /{$}", http.RedirectHandler("/ui/", http.StatusFound), Public())
}
