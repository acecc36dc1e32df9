// Command hello is a small service built on kit: a greeting API whose
// /v1/hello/{name} route calls /v1/greeting/{name} through kit's client, so
// trace and caller propagation show in the access log. It also accepts
// environment knobs that inject failures and latency per route, for release
// demos (a canary that fails, a canary that is slow):
//
//	HELLO_FAIL_ROUTE="POST /v1/pay" HELLO_FAIL_RATE=0.05 PORT=8081 go run ./examples/hello
package main

import (
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/pave-platform/pave/kit"
)

func main() {
	k, err := knobsFromEnv(os.Getenv)
	if err != nil {
		fmt.Fprintln(os.Stderr, "hello:", err)
		os.Exit(2)
	}
	app := kit.New("hello")
	upstream := os.Getenv("HELLO_UPSTREAM")
	if upstream == "" {
		// Call ourselves: the default address is ":PORT".
		_, port, _ := net.SplitHostPort(app.Config().Addr)
		upstream = "http://127.0.0.1:" + port
	}
	register(app, k, upstream)
	app.Logger().Info("hello configured", "upstream", upstream, "fail_routes", strings.Join(k.routes, ","),
		"fail_rate", k.failRate, "fail_status", k.failStatus, "extra_latency", k.latency.String())
	if err := app.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "hello:", err)
		os.Exit(1)
	}
}

// knobs are the fault-injection settings.
type knobs struct {
	routes     []string // patterns such as "POST /v1/pay"; "*" is every route
	failRate   float64
	failStatus int
	latency    time.Duration
	sleep      func(time.Duration)
	roll       func() float64
}

func knobsFromEnv(getenv func(string) string) (knobs, error) {
	k := knobs{failStatus: http.StatusInternalServerError, sleep: time.Sleep, roll: rand.Float64}
	for _, r := range strings.Split(getenv("HELLO_FAIL_ROUTE"), ",") {
		if r = strings.TrimSpace(r); r != "" {
			if r != "*" && !knownRoute(r) {
				return k, fmt.Errorf("HELLO_FAIL_ROUTE: %q is not one of hello's routes (%s) or *", r, strings.Join(routes, ", "))
			}
			k.routes = append(k.routes, r)
		}
	}
	if v := getenv("HELLO_FAIL_RATE"); v != "" {
		f, err := strconv.ParseFloat(v, 64)
		if err != nil || f < 0 || f > 1 {
			return k, fmt.Errorf("HELLO_FAIL_RATE=%q: want a fraction between 0 and 1, such as 0.05", v)
		}
		k.failRate = f
	}
	if v := getenv("HELLO_FAIL_STATUS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 400 || n > 599 {
			return k, fmt.Errorf("HELLO_FAIL_STATUS=%q: want an HTTP error status between 400 and 599", v)
		}
		k.failStatus = n
	}
	if v := getenv("HELLO_EXTRA_LATENCY"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d < 0 || d > time.Minute {
			return k, fmt.Errorf("HELLO_EXTRA_LATENCY=%q: want a duration between 0 and 1m, such as 100ms", v)
		}
		k.latency = d
	}
	if (k.failRate > 0) && len(k.routes) == 0 {
		return k, fmt.Errorf("HELLO_FAIL_RATE is set but HELLO_FAIL_ROUTE is empty: name the routes to fail, or * for all")
	}
	return k, nil
}

var routes = []string{"GET /v1/hello/{name}", "GET /v1/greeting/{name}", "POST /v1/pay"}

func knownRoute(r string) bool {
	for _, x := range routes {
		if x == r {
			return true
		}
	}
	return false
}

// applies says whether the knobs act on pattern. Latency with no route
// list applies to every route.
func (k knobs) applies(pattern string) bool {
	if len(k.routes) == 0 {
		return k.latency > 0
	}
	for _, r := range k.routes {
		if r == "*" || r == pattern {
			return true
		}
	}
	return false
}

func (k knobs) wrap(pattern string, h http.HandlerFunc) http.HandlerFunc {
	if !k.applies(pattern) {
		return h
	}
	return func(w http.ResponseWriter, r *http.Request) {
		if k.latency > 0 {
			k.sleep(k.latency)
		}
		if k.failRate > 0 && k.roll() < k.failRate {
			http.Error(w, "injected failure (HELLO_FAIL_RATE)", k.failStatus)
			return
		}
		h(w, r)
	}
}

func register(app *kit.App, k knobs, upstream string) {
	log := app.Logger()
	handle := func(pattern string, h http.HandlerFunc) { app.HandleFunc(pattern, k.wrap(pattern, h)) }

	handle("GET /v1/greeting/{name}", func(w http.ResponseWriter, r *http.Request) {
		name := r.PathValue("name")
		log.InfoContext(r.Context(), "greeting", "name", name)
		writeJSON(w, http.StatusOK, map[string]string{"greeting": "Hello, " + name + "!"})
	})

	handle("GET /v1/hello/{name}", func(w http.ResponseWriter, r *http.Request) {
		url := upstream + "/v1/greeting/" + r.PathValue("name")
		req, err := http.NewRequestWithContext(r.Context(), http.MethodGet, url, nil)
		if err != nil {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
			return
		}
		resp, err := app.Client().Do(req)
		if err != nil {
			log.ErrorContext(r.Context(), "greeting call failed", "error", err)
			writeJSON(w, http.StatusBadGateway, map[string]string{"error": "greeting service unreachable"})
			return
		}
		defer resp.Body.Close()
		var g struct {
			Greeting string `json:"greeting"`
		}
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		if resp.StatusCode != http.StatusOK || json.Unmarshal(body, &g) != nil {
			log.WarnContext(r.Context(), "greeting call returned an error", "status", resp.StatusCode)
			writeJSON(w, http.StatusBadGateway, map[string]string{"error": fmt.Sprintf("greeting service answered %d", resp.StatusCode)})
			return
		}
		writeJSON(w, http.StatusOK, map[string]string{"message": g.Greeting, "version": app.Config().Version})
	})

	handle("POST /v1/pay", func(w http.ResponseWriter, r *http.Request) {
		log.InfoContext(r.Context(), "payment accepted")
		writeJSON(w, http.StatusCreated, map[string]string{"status": "accepted"})
	})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
