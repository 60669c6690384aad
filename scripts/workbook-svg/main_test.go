package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestPictureIsDrawnFromTheEvents: docs/workbook.svg is exactly what the recorded events draw,
// so the README's picture cannot drift from the telemetry the handler really sent.
func TestPictureIsDrawnFromTheEvents(t *testing.T) {
	root := filepath.Join("..", "..")
	b, err := os.ReadFile(filepath.Join(root, eventsPath))
	if err != nil {
		t.Fatal(err)
	}
	var rows []row
	if err := json.Unmarshal(b, &rows); err != nil {
		t.Fatalf("%s: %v", eventsPath, err)
	}
	want, err := render(rows)
	if err != nil {
		t.Fatalf("render: %v", err)
	}
	got, err := os.ReadFile(filepath.Join(root, svgPath))
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != want {
		t.Errorf("%s is not what %s draws; run: go run ./scripts/workbook-svg", svgPath, eventsPath)
	}
}

func TestRenderRefusesWhatItCannotDraw(t *testing.T) {
	tests := []struct {
		name string
		rows []row
		want string
	}{
		{"nothing", nil, "no events"},
		{"unknown status", []row{{Hour: 0, Status: "revokd"}}, "revokd"},
		{"hour out of range", []row{{Hour: 99, Status: "revoked"}}, "99"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := render(tt.rows); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("render(%v) = %v; want an error naming %q", tt.rows, err, tt.want)
			}
		})
	}
}
