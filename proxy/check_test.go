package proxy

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gatehouse-dev/gatehouse/config"
)

func TestCheckNamesFileLineField(t *testing.T) {
	path := filepath.Join(t.TempDir(), "gatehouse.yaml")
	body := fmt.Sprintf(reloadYAML, routeYAML("one", "one.example.com", "http://127.0.0.1:1")+
		routeYAML("dup", "two.example.com", "http://127.0.0.1:2"))
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	// A problem only the proxy sees (config validation passed it).
	cfg.Routes[1].Host = "ONE.example.com."
	err = Check(context.Background(), cfg)
	var fe *config.FieldError
	if !errors.As(err, &fe) || !errors.Is(err, ErrRouteConfig) {
		t.Fatalf("Check = %v, want a config.FieldError for the duplicate route", err)
	}
	if want := path + ":13: routes[1].host: "; !strings.HasPrefix(err.Error(), want) {
		t.Errorf("Check = %q, want prefix %q", err, want)
	}
}

func TestCheckRunsRegisteredCheckers(t *testing.T) {
	cfg := baseConfig("http://127.0.0.1:1")
	var ran bool
	checkersMu.Lock()
	saved := checkers
	checkersMu.Unlock()
	t.Cleanup(func() { checkersMu.Lock(); checkers = saved; checkersMu.Unlock() })
	RegisterChecker("policy", func(_ context.Context, c *config.Config) error {
		ran = c == cfg
		return errFake
	})
	err := Check(context.Background(), cfg)
	if !ran || !errors.Is(err, errFake) || !strings.HasPrefix(err.Error(), "policy: ") {
		t.Fatalf("Check = %v (checker ran: %v)", err, ran)
	}
}
