package web

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"io/fs"
	"mime"
	"net/http"
	"path"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Handler serves the built files (the dashboard and the API docs page).
//
// Text files go gzip-compressed to a browser that accepts it: the
// dashboard's script is ~300 KiB as built and ~90 KiB compressed, which is
// most of a first load over a real network. Each file is compressed once,
// on its first request (the API docs' 1.7 MiB bundle only if someone opens
// /docs), and kept.
//
// Every file carries an ETag of its contents (another one for the
// compressed form, as a different representation must), so a reload
// revalidates with a 304. Files under assets/ have a content hash in their
// name (vite's), so the browser may keep them for a year without asking;
// everything else (index.html, which names the current assets) is
// revalidated on each load. Directories, redirects (/docs to /docs/) and
// missing files are left to http.FileServerFS.
//
// Safe for concurrent use.
func Handler() http.Handler { return newStatic(Dist()) }

type static struct {
	fsys     fs.FS
	fallback http.Handler

	mu    sync.Mutex
	files map[string]*staticFile // by path in fsys; one entry per file asked for
}

// staticFile is one file's bytes, loaded on first use.
type staticFile struct {
	once  sync.Once
	err   error
	plain []byte
	gz    []byte // nil when the file is not text or does not get smaller
	ctype string
	etag  string // of plain; the gzip form's is etag with -gz before the closing quote
}

// compressible names the extensions worth gzipping; images and fonts in
// dist are compressed already.
var compressible = map[string]bool{
	".html": true, ".js": true, ".mjs": true, ".css": true, ".json": true,
	".svg": true, ".txt": true, ".map": true, "": true, // "": swagger-ui-LICENSE
}

func newStatic(fsys fs.FS) *static {
	return &static{fsys: fsys, fallback: http.FileServerFS(fsys), files: map[string]*staticFile{}}
}

func (s *static) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	name, ok := s.fileName(r.URL.Path)
	if !ok {
		s.fallback.ServeHTTP(w, r)
		return
	}
	f := s.file(name)
	if f.err != nil {
		s.fallback.ServeHTTP(w, r)
		return
	}
	h := w.Header()
	if strings.HasPrefix(name, "assets/") {
		h.Set("Cache-Control", "public, max-age=31536000, immutable")
	} else {
		h.Set("Cache-Control", "no-cache")
	}
	h.Set("Content-Type", f.ctype)
	body, etag := f.plain, f.etag
	if f.gz != nil {
		h.Add("Vary", "Accept-Encoding")
		if acceptsGzip(r.Header.Values("Accept-Encoding")) {
			body, etag = f.gz, strings.TrimSuffix(f.etag, `"`)+`-gz"`
			h.Set("Content-Encoding", "gzip")
			// ServeContent leaves the length out of an encoded response and
			// would answer a range of the compressed bytes: the whole file,
			// with its length, instead (a 304 drops the length itself).
			r.Header.Del("Range")
			h.Set("Content-Length", strconv.Itoa(len(body)))
		}
	}
	h.Set("ETag", etag)
	// ServeContent answers If-None-Match (304), ranges and HEAD.
	http.ServeContent(w, r, name, time.Time{}, bytes.NewReader(body))
}

// fileName is the regular file a URL path names in fsys ("/" is
// index.html); false for anything the file server should answer itself:
// a directory, a missing file, or a path ending in /index.html (which it
// redirects to the directory).
func (s *static) fileName(urlPath string) (string, bool) {
	if !strings.HasPrefix(urlPath, "/") || strings.HasSuffix(urlPath, "/index.html") {
		return "", false
	}
	name := strings.TrimPrefix(path.Clean(urlPath), "/")
	if strings.HasSuffix(urlPath, "/") {
		name = path.Join(name, "index.html")
	}
	if name == "" || !fs.ValidPath(name) {
		return "", false
	}
	st, err := fs.Stat(s.fsys, name)
	if err != nil || !st.Mode().IsRegular() {
		return "", false
	}
	return name, true
}

func (s *static) file(name string) *staticFile {
	s.mu.Lock()
	f := s.files[name]
	if f == nil {
		f = &staticFile{}
		s.files[name] = f
	}
	s.mu.Unlock()
	f.once.Do(func() { f.load(s.fsys, name) })
	return f
}

func (f *staticFile) load(fsys fs.FS, name string) {
	f.plain, f.err = fs.ReadFile(fsys, name)
	if f.err != nil {
		return
	}
	sum := sha256.Sum256(f.plain)
	f.etag = `"` + hex.EncodeToString(sum[:12]) + `"`
	ext := path.Ext(name)
	f.ctype = mime.TypeByExtension(ext)
	if f.ctype == "" {
		f.ctype = http.DetectContentType(f.plain)
	}
	if !compressible[ext] {
		return
	}
	var buf bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression) // a valid level: no error
	_, _ = zw.Write(f.plain)                                 // a bytes.Buffer does not fail
	_ = zw.Close()
	// Below ~1 KiB, or when it hardly shrinks, compressing costs the browser more than it saves.
	if len(f.plain) >= 1024 && buf.Len() < len(f.plain)*9/10 {
		f.gz = buf.Bytes()
	}
}

// acceptsGzip reports whether an Accept-Encoding header allows gzip: listed
// (or "*") with a quality above 0.
func acceptsGzip(headers []string) bool {
	gzipQ, starQ := -1.0, -1.0
	for _, h := range headers {
		for _, part := range strings.Split(h, ",") {
			coding, params, _ := strings.Cut(strings.TrimSpace(part), ";")
			q := 1.0
			for _, p := range strings.Split(params, ";") {
				k, v, ok := strings.Cut(strings.TrimSpace(p), "=")
				if ok && strings.EqualFold(strings.TrimSpace(k), "q") {
					if f, err := strconv.ParseFloat(strings.TrimSpace(v), 64); err == nil {
						q = f
					}
				}
			}
			switch strings.ToLower(strings.TrimSpace(coding)) {
			case "gzip", "x-gzip":
				gzipQ = q
			case "*":
				starQ = q
			}
		}
	}
	if gzipQ >= 0 {
		return gzipQ > 0
	}
	return starQ > 0
}
