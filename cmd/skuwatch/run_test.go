package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/skuwatch/skuwatch/sinks/postgres/pgtest"
)

func writeConfig(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "skuwatch.yaml")
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestConfigErrors(t *testing.T) {
	cases := []struct{ body, want string }{
		{"kafka: {brokers: []}\n", "kafka.brokers"},
		{"kafka: {brokers: [a:1]}\ncolour: red\n", "field colour not found"},
		{"kafka: {brokers: [a:1]}\n", "topics.raw"},
		{"kafka: {brokers: [a:1]}\ntopics: {raw: [r]}\n", "data_dir"},
		{"kafka: {brokers: [a:1]}\ntopics: {raw: [r]}\ndata_dir: d\nrules: r.yaml\n", "sinks"},
		{"kafka: {brokers: [a:1], sasl: {mechanism: GSSAPI}}\nstages: [intake]\ntopics: {raw: [r]}\n", "not PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512"},
		{"kafka: {brokers: [a:1], sasl: {mechanism: SCRAM-SHA-512, username: u, password_env: SKUWATCH_TEST_UNSET}}\nstages: [intake]\ntopics: {raw: [r]}\n", "SKUWATCH_TEST_UNSET is empty or unset"},
		{"kafka: {brokers: [a:1], tls: {cert_file: c}}\nstages: [intake]\ntopics: {raw: [r]}\n", "cert_file and key_file go together"},
		{"kafka: {brokers: [a:1]}\nstages: [intake, audit]\ntopics: {raw: [r]}\n", `"audit" is not intake or processor`},
		{"kafka: {brokers: [a:1]}\nstages: [intake]\ntopics: {raw: [r]}\nintake: {max_future_skew: soon}\n", "max_future_skew"},
		{"kafka: {brokers: [a:1]}\nstages: [intake]\ntopics: {raw: [r]}\nprocessor: {batch_window: 0s}\n", "processor.batch_window"},
		{"kafka: {brokers: [a:1]}\nstages: [intake]\ntopics: {raw: [r]}\nprocessor: {commit_interval: soon}\n", "processor.commit_interval"},
		{"kafka: {brokers: [a:1]}\nstages: [intake]\ntopics: {raw: [r]}\nprocessor: {dedup_retention: 5m}\n", "processor.dedup_retention"},
		{"kafka: {brokers: [a:1]}\ntopics: {raw: [r]}\ndata_dir: d\nrules: r.yaml\nsinks: {postgres: {dsn_env: SKUWATCH_TEST_UNSET}}\n", "SKUWATCH_TEST_UNSET is empty or unset"},
		{"kafka: {brokers: [a:1]}\ntopics: {raw: [r]}\ndata_dir: d\nrules: r.yaml\nsinks: {postgres: {dsn: \"postgres://h:notaport/db\"}}\n", "sinks.postgres"},
	}
	for _, c := range cases {
		_, err := loadConfig(writeConfig(t, c.body))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: got %v, want an error with %q", c.body, err, c.want)
		}
	}
	t.Setenv("SKUWATCH_TEST_PW", "secret")
	c, err := loadConfig(writeConfig(t, "kafka: {brokers: [a:1], sasl: {mechanism: SCRAM-SHA-256, username: u, password_env: SKUWATCH_TEST_PW}}\nstages: [intake]\ntopics: {raw: [r]}\n"))
	if err != nil || c.Kafka.SASL.Password != "secret" || c.Topics.Ledger != "skuwatch.ledger" || c.HTTP.Addr == "" {
		t.Fatalf("config %+v, %v", c, err)
	}
	if _, _, err := c.kafkaClients(); err != nil {
		t.Errorf("SCRAM client: %v", err)
	}
	if code, _, stderr := runCLI("run", "--config", writeConfig(t, "kafka: {brokers: []}\n")); code != 1 || !strings.Contains(stderr, "kafka.brokers") {
		t.Errorf("run with a bad config: exit %d, %s", code, stderr)
	}
}

// TestRunService runs the service against the Kafka wire protocol: raw events
// in, a short receipt out as an exception (JSONL, the exceptions topic and
// PostgreSQL), metrics and readiness over HTTP, and a clean stop on cancel.
func TestRunService(t *testing.T) {
	schema := pgtest.Schema(t)
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(2, "raw.wms"), kfake.SeedTopics(4, "skuwatch.ledger", "skuwatch.changelog"),
		kfake.SeedTopics(1, "skuwatch.dlq", "skuwatch.exceptions"), kfake.GroupMinSessionTimeout(500*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer cluster.Close()
	dir := t.TempDir()
	cfg, err := loadConfig(writeConfig(t, fmt.Sprintf(`kafka: {brokers: [%s]}
topics: {raw: [raw.wms]}
data_dir: %s
rules: ../../rules/default.yaml
sinks: {jsonl_dir: %s, kafka_exceptions: true, postgres: {dsn: %q, schema: %s}}
http: {addr: "127.0.0.1:0"}
`, cluster.ListenAddrs()[0], filepath.Join(dir, "state"), filepath.Join(dir, "out"), pgtest.DSN(), schema)))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	addrc := make(chan string, 1)
	go func() { done <- runService(ctx, cfg, func(a string) { addrc <- a }) }()
	var addr string
	select {
	case addr = <-addrc:
	case err := <-done:
		t.Fatalf("service stopped: %v", err)
	}
	now := time.Now().UTC().Add(-time.Minute).Format(time.RFC3339)
	tr := &kafka.Transport{}
	defer tr.CloseIdleConnections()
	w := &kafka.Writer{Addr: kafka.TCP(cluster.ListenAddrs()...), Topic: "raw.wms", RequiredAcks: kafka.RequireAll, Transport: tr}
	err = w.WriteMessages(context.Background(),
		kafka.Message{Value: []byte(`{"event_id":"c1","source":"wms","type":"count","sku":"S","location":"ST1","on_hand":5,"event_time":"` + now + `"}`)},
		kafka.Message{Value: []byte(`{"event_id":"t1","source":"wms","type":"transfer_out","sku":"S","location":"WH","to_location":"ST1","transfer_id":"TR-1","qty":10,"event_time":"` + now + `"}`)},
		kafka.Message{Value: []byte(`{"event_id":"t2","source":"wms","type":"transfer_in","sku":"S","location":"ST1","from_location":"WH","transfer_id":"TR-1","qty":7,"event_time":"` + now + `"}`)},
		kafka.Message{Value: []byte(`not an event`)})
	w.Close()
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	found := false
	for !found && time.Now().Before(deadline) {
		matches, _ := filepath.Glob(filepath.Join(dir, "out", "exceptions-*.jsonl"))
		for _, m := range matches {
			b, _ := os.ReadFile(m)
			found = found || strings.Contains(string(b), `"rule":"transfer_mismatch"`)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if !found {
		t.Fatal("no transfer_mismatch exception in the JSONL sink")
	}
	get := func(path string) (int, string) {
		resp, err := http.Get("http://" + addr + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := get("/readyz"); code != 200 {
		t.Errorf("/readyz %d %s", code, body)
	}
	if code, _ := get("/healthz"); code != 200 {
		t.Errorf("/healthz %d", code)
	}
	_, metrics := get("/metrics")
	for _, m := range []string{"skuwatch_events_total", `skuwatch_exceptions_total{change="opened",rule="transfer_mismatch",severity="3"} 1`,
		"skuwatch_consumer_lag_records", "skuwatch_outbox_depth_rows", "skuwatch_rules_last_reload_successful 1", "skuwatch_batch_duration_seconds"} {
		if !strings.Contains(metrics, m) {
			t.Errorf("/metrics lacks %s", m)
		}
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("service stopped with %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("service did not stop")
	}
	conn, err := kafka.DialLeader(context.Background(), "tcp", cluster.ListenAddrs()[0], "skuwatch.exceptions", 0)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if last, _ := conn.ReadLastOffset(); last < 1 {
		t.Error("no exception on the exceptions topic")
	}
	var rule, status string
	if err := pgtest.Connect(t).QueryRow(context.Background(), "SELECT rule, status FROM "+schema+".exceptions").Scan(&rule, &status); err != nil || rule != "transfer_mismatch" {
		t.Errorf("PostgreSQL: %s %s, %v; want the open transfer_mismatch", rule, status, err)
	}
	dlq, _ := kafka.DialLeader(context.Background(), "tcp", cluster.ListenAddrs()[0], "skuwatch.dlq", 0)
	defer dlq.Close()
	if last, _ := dlq.ReadLastOffset(); last != 1 {
		t.Errorf("%d dead letters, want 1", last)
	}
}
