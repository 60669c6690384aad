package main

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestTableOperation(t *testing.T) {
	t.Parallel()
	entity := "/devstoreaccount1/revokestate(PartitionKey='req',RowKey='abc')"
	tests := []struct {
		method, path string
		header       map[string]string
		want         string
	}{
		{"POST", "/devstoreaccount1/Tables", nil, "table post"},
		{"POST", "/devstoreaccount1/revokestate", nil, "insert"},
		{"GET", entity, nil, "read"},
		{"GET", "/devstoreaccount1/revokestate()?$filter=x", nil, "query"},
		{"GET", "/devstoreaccount1/revokestate", nil, "query"},
		{"PUT", entity, map[string]string{"If-Match": `W/"1"`}, "replace"},
		{"PUT", entity, nil, "upsert"},
		{"MERGE", entity, map[string]string{"If-Match": "*"}, "merge"},
		{"POST", entity, map[string]string{"X-HTTP-Method": "MERGE"}, "merge-upsert"},
		{"DELETE", entity, map[string]string{"If-Match": "*"}, "delete"},
		{"POST", "/devstoreaccount1/$batch", nil, "batch"},
	}
	for _, tt := range tests {
		r := httptest.NewRequest(tt.method, "http://127.0.0.1:1"+tt.path, nil)
		for k, v := range tt.header {
			r.Header.Set(k, v)
		}
		if got := tableOperation(r); got != tt.want {
			t.Errorf("tableOperation(%s %s %v) = %q; want %q", tt.method, tt.path, tt.header, got, tt.want)
		}
	}
}

func TestTableProxyForwardsAndCounts(t *testing.T) {
	t.Parallel()
	var gotPath, gotHost string
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gotPath, gotHost = r.URL.Path, r.Host
		if r.Method == http.MethodPost {
			w.WriteHeader(http.StatusConflict)
		}
		_, _ = io.WriteString(w, "ok")
	}))
	t.Cleanup(upstream.Close)
	p, err := newTableProxy(upstream.URL + "/devstoreaccount1")
	if err != nil {
		t.Fatal(err)
	}
	front := httptest.NewServer(p)
	t.Cleanup(front.Close)
	for _, method := range []string{http.MethodGet, http.MethodPost} {
		req, _ := http.NewRequest(method, front.URL+"/devstoreaccount1/revokestate(PartitionKey='a',RowKey='b')", strings.NewReader(""))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	if want := "/devstoreaccount1/revokestate(PartitionKey='a',RowKey='b')"; gotPath != want || gotHost != strings.TrimPrefix(front.URL, "http://") {
		t.Errorf("upstream saw path %q, host %q; want %q and the proxy's host (as signed)", gotPath, gotHost, want)
	}
	c := p.counts()
	if c.Total != 2 || c.ByOp["read"] != 1 || c.ByOp["post"] != 1 || c.Refused["post 409"] != 1 {
		t.Errorf("counts = %+v; want 2 requests: 1 read, 1 post refused with 409", c)
	}
}
