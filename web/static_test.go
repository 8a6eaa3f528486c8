package web

import (
	"bytes"
	"compress/gzip"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"testing/fstest"
)

func testFS() fstest.MapFS {
	script := []byte(strings.Repeat("console.log('progressd');\n", 400))
	return fstest.MapFS{
		"index.html":           {Data: []byte("<!doctype html><title>progressd</title>" + strings.Repeat("<p>row</p>", 200))},
		"assets/index-abc.js":  {Data: script},
		"assets/tiny.css":      {Data: []byte("body{}")},
		"assets/logo.png":      {Data: bytes.Repeat([]byte{0x89, 'P', 'N', 'G'}, 1000)},
		"docs/index.html":      {Data: []byte("<!doctype html><title>docs</title>")},
		"docs/swagger-LICENSE": {Data: []byte(strings.Repeat("Apache License 2.0\n", 200))},
	}
}

type resp struct {
	code int
	h    http.Header
	body []byte
}

func get(t *testing.T, h http.Handler, method, target string, hdr ...string) resp {
	t.Helper()
	r := httptest.NewRequest(method, target, nil)
	for i := 0; i+1 < len(hdr); i += 2 {
		r.Header.Add(hdr[i], hdr[i+1])
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return resp{w.Code, w.Result().Header, w.Body.Bytes()}
}

func gunzip(t *testing.T, b []byte) []byte {
	t.Helper()
	zr, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("not gzip: %v", err)
	}
	out, err := io.ReadAll(zr)
	if err != nil {
		t.Fatalf("bad gzip: %v", err)
	}
	return out
}

func TestStaticCompressesForBrowsersThatAcceptIt(t *testing.T) {
	fsys := testFS()
	h := newStatic(fsys)
	want := fsys["assets/index-abc.js"].Data

	gz := get(t, h, "GET", "/assets/index-abc.js", "Accept-Encoding", "gzip, deflate, br, zstd")
	if gz.code != 200 || gz.h.Get("Content-Encoding") != "gzip" {
		t.Fatalf("with gzip accepted: %d, Content-Encoding %q", gz.code, gz.h.Get("Content-Encoding"))
	}
	if !bytes.Equal(gunzip(t, gz.body), want) || len(gz.body) >= len(want)/2 {
		t.Fatalf("gzip body: %d bytes for %d", len(gz.body), len(want))
	}
	if ct := gz.h.Get("Content-Type"); !strings.HasPrefix(ct, "text/javascript") {
		t.Errorf("Content-Type %q: the compressed file must keep its own type", ct)
	}
	if gz.h.Get("Content-Length") != strconv.Itoa(len(gz.body)) {
		t.Errorf("Content-Length %q for %d bytes", gz.h.Get("Content-Length"), len(gz.body))
	}
	if r := get(t, h, "GET", "/assets/index-abc.js", "Accept-Encoding", "gzip", "Range", "bytes=0-9"); r.code != 200 || !bytes.Equal(gunzip(t, r.body), want) {
		t.Errorf("a range with gzip accepted: %d, want the whole file compressed", r.code)
	}
	if gz.h.Get("Vary") != "Accept-Encoding" || gz.h.Get("Cache-Control") != "public, max-age=31536000, immutable" {
		t.Errorf("hashed asset headers: Vary %q, Cache-Control %q", gz.h.Get("Vary"), gz.h.Get("Cache-Control"))
	}

	for _, ae := range []string{"", "identity", "gzip;q=0", "br", "*;q=0", "gzip; q=0.000"} {
		p := get(t, h, "GET", "/assets/index-abc.js", "Accept-Encoding", ae)
		if p.code != 200 || p.h.Get("Content-Encoding") != "" || !bytes.Equal(p.body, want) {
			t.Errorf("Accept-Encoding %q: %d, Content-Encoding %q, %d bytes", ae, p.code, p.h.Get("Content-Encoding"), len(p.body))
		}
		if p.h.Get("ETag") == gz.h.Get("ETag") || p.h.Get("ETag") == "" {
			t.Errorf("Accept-Encoding %q: ETag %q, the gzip form's %q: two representations need two ETags", ae, p.h.Get("ETag"), gz.h.Get("ETag"))
		}
	}
	for _, ae := range []string{"*", "x-gzip", "deflate, GZIP;q=0.5"} {
		if p := get(t, h, "GET", "/assets/index-abc.js", "Accept-Encoding", ae); p.h.Get("Content-Encoding") != "gzip" {
			t.Errorf("Accept-Encoding %q: not compressed", ae)
		}
	}
}

func TestStaticRevalidatesWithETag(t *testing.T) {
	h := newStatic(testFS())
	for _, ae := range []string{"gzip", ""} {
		first := get(t, h, "GET", "/", "Accept-Encoding", ae)
		if first.code != 200 || !strings.Contains(string(first.body)+string(gunzipIf(t, first)), "<title>progressd</title>") {
			t.Fatalf("GET / (Accept-Encoding %q): %d", ae, first.code)
		}
		if first.h.Get("Cache-Control") != "no-cache" {
			t.Errorf("index.html names the current assets, so it must be revalidated: Cache-Control %q", first.h.Get("Cache-Control"))
		}
		again := get(t, h, "GET", "/", "Accept-Encoding", ae, "If-None-Match", first.h.Get("ETag"))
		if again.code != http.StatusNotModified || len(again.body) != 0 {
			t.Errorf("If-None-Match with its ETag (Accept-Encoding %q): %d, %d bytes", ae, again.code, len(again.body))
		}
	}
	// The other representation's ETag does not match.
	plain := get(t, h, "GET", "/")
	if r := get(t, h, "GET", "/", "Accept-Encoding", "gzip", "If-None-Match", plain.h.Get("ETag")); r.code != 200 || r.h.Get("Content-Encoding") != "gzip" {
		t.Errorf("the plain ETag with gzip accepted: %d %q", r.code, r.h.Get("Content-Encoding"))
	}
}

func gunzipIf(t *testing.T, r resp) []byte {
	if r.h.Get("Content-Encoding") == "gzip" {
		return gunzip(t, r.body)
	}
	return nil
}

func TestStaticLeavesSmallAndBinaryFilesAlone(t *testing.T) {
	h := newStatic(testFS())
	for _, p := range []string{"/assets/tiny.css", "/assets/logo.png"} {
		r := get(t, h, "GET", p, "Accept-Encoding", "gzip")
		if r.code != 200 || r.h.Get("Content-Encoding") != "" || r.h.Get("Vary") != "" {
			t.Errorf("%s: %d, Content-Encoding %q, Vary %q", p, r.code, r.h.Get("Content-Encoding"), r.h.Get("Vary"))
		}
	}
	if ct := get(t, h, "GET", "/assets/logo.png").h.Get("Content-Type"); ct != "image/png" {
		t.Errorf("png Content-Type %q", ct)
	}
	// A file without an extension is sniffed from its plain bytes, never from the gzip form.
	r := get(t, h, "GET", "/docs/swagger-LICENSE", "Accept-Encoding", "gzip")
	if r.h.Get("Content-Encoding") != "gzip" || !strings.HasPrefix(r.h.Get("Content-Type"), "text/plain") {
		t.Errorf("LICENSE: Content-Encoding %q, Content-Type %q", r.h.Get("Content-Encoding"), r.h.Get("Content-Type"))
	}
}

func TestStaticLeavesDirectoriesAndMissingFilesToTheFileServer(t *testing.T) {
	h := newStatic(testFS())
	if r := get(t, h, "GET", "/docs"); r.code != http.StatusMovedPermanently || r.h.Get("Location") != "docs/" {
		t.Errorf("/docs: %d Location %q", r.code, r.h.Get("Location"))
	}
	if r := get(t, h, "GET", "/docs/", "Accept-Encoding", "gzip"); r.code != 200 || !strings.Contains(string(r.body), "<title>docs</title>") {
		t.Errorf("/docs/: %d %q", r.code, r.body)
	}
	if r := get(t, h, "GET", "/index.html"); r.code != http.StatusMovedPermanently {
		t.Errorf("/index.html: %d, want the file server's redirect to /", r.code)
	}
	for _, p := range []string{"/nope.js", "/assets/nope.js", "/../index.html"} {
		if r := get(t, h, "GET", p); r.code != http.StatusNotFound && r.code != http.StatusMovedPermanently {
			t.Errorf("%s: %d", p, r.code)
		}
	}
	if r := get(t, h, "HEAD", "/assets/index-abc.js", "Accept-Encoding", "gzip"); r.code != 200 || len(r.body) != 0 || r.h.Get("Content-Encoding") != "gzip" {
		t.Errorf("HEAD: %d, %d bytes, %q", r.code, len(r.body), r.h.Get("Content-Encoding"))
	}
	if r := get(t, h, "GET", "/assets/index-abc.js", "Range", "bytes=0-9"); r.code != http.StatusPartialContent || string(r.body) != "console.lo" {
		t.Errorf("range: %d %q", r.code, r.body)
	}
}

// The embedded build: the dashboard's page and script go compressed.
func TestHandlerServesTheBuild(t *testing.T) {
	h := Handler()
	page := get(t, h, "GET", "/", "Accept-Encoding", "gzip")
	if page.code != 200 || page.h.Get("Content-Encoding") != "gzip" && len(page.body) >= 1024 {
		t.Fatalf("GET /: %d %q", page.code, page.h.Get("Content-Encoding"))
	}
	html := string(gunzipIf(t, page))
	if html == "" {
		html = string(page.body)
	}
	i := strings.Index(html, "/assets/")
	if i < 0 {
		t.Fatalf("index.html names no asset: %s", html)
	}
	js := html[i : i+strings.IndexByte(html[i:], '"')]
	r := get(t, h, "GET", js, "Accept-Encoding", "gzip")
	if r.code != 200 || r.h.Get("Content-Encoding") != "gzip" || len(gunzip(t, r.body)) < 2*len(r.body) {
		t.Fatalf("%s: %d %q, %d bytes", js, r.code, r.h.Get("Content-Encoding"), len(r.body))
	}
}
