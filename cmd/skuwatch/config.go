package main

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/sasl"
	"github.com/segmentio/kafka-go/sasl/plain"
	"github.com/segmentio/kafka-go/sasl/scram"
	"go.yaml.in/yaml/v3"
)

// config is the service's configuration file (see docs/skuwatch.example.yaml).
// Unknown fields are errors.
type config struct {
	Kafka struct {
		Brokers []string `yaml:"brokers"`
		TLS     struct {
			Enabled            bool   `yaml:"enabled"`
			CAFile             string `yaml:"ca_file"`
			CertFile           string `yaml:"cert_file"`
			KeyFile            string `yaml:"key_file"`
			ServerName         string `yaml:"server_name"`
			InsecureSkipVerify bool   `yaml:"insecure_skip_verify"`
		} `yaml:"tls"`
		SASL struct {
			Mechanism   string `yaml:"mechanism"` // PLAIN, SCRAM-SHA-256, SCRAM-SHA-512
			Username    string `yaml:"username"`
			Password    string `yaml:"password"`
			PasswordEnv string `yaml:"password_env"` // read the password from this environment variable
		} `yaml:"sasl"`
	} `yaml:"kafka"`
	Topics struct {
		Raw        []string `yaml:"raw"`
		Ledger     string   `yaml:"ledger"`
		DLQ        string   `yaml:"dlq"`
		Exceptions string   `yaml:"exceptions"`
		Changelog  string   `yaml:"changelog"` // partition state follows partitions between instances; "none" to keep it local
	} `yaml:"topics"`
	Groups struct {
		Intake    string `yaml:"intake"`
		Processor string `yaml:"processor"`
	} `yaml:"groups"`
	Stages  []string `yaml:"stages"` // intake, processor; default both
	DataDir string   `yaml:"data_dir"`
	Rules   string   `yaml:"rules"`
	Sinks   struct {
		JSONLDir        string `yaml:"jsonl_dir"`
		KafkaExceptions bool   `yaml:"kafka_exceptions"`
		Postgres        struct {
			DSN    string `yaml:"dsn"`     // libpq URL or key=value; better without the password
			DSNEnv string `yaml:"dsn_env"` // or: the environment variable that holds the DSN
			Schema string `yaml:"schema"`
		} `yaml:"postgres"`
	} `yaml:"sinks"`
	HTTP struct {
		Addr string `yaml:"addr"`
	} `yaml:"http"`
	Intake struct {
		Sources       []string `yaml:"sources"`
		MaxFutureSkew string   `yaml:"max_future_skew"`
	} `yaml:"intake"`
	Processor struct {
		BatchSize      int    `yaml:"batch_size"`
		BatchWindow    string `yaml:"batch_window"`
		CommitInterval string `yaml:"commit_interval"`
		CacheEntries   int    `yaml:"cache_entries"`
		MaxBacklog     uint64 `yaml:"max_backlog"`
		DedupRetention string `yaml:"dedup_retention"`
		SnapshotBytes  int64  `yaml:"snapshot_bytes"`
	} `yaml:"processor"`
	Profiling struct {
		PyroscopeURL string `yaml:"pyroscope_url"`
		AppName      string `yaml:"app_name"`
	} `yaml:"profiling"`

	futureSkew     time.Duration
	batchWindow    time.Duration
	commitInterval time.Duration
	dedupRetention time.Duration
}

func (c *config) runs(stage string) bool {
	if len(c.Stages) == 0 {
		return true
	}
	for _, s := range c.Stages {
		if s == stage {
			return true
		}
	}
	return false
}

// loadConfig reads, defaults and validates a config file; every problem is
// listed.
func loadConfig(path string) (*config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var c config
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil {
		return nil, fmt.Errorf("%s: %s", path, strings.TrimPrefix(err.Error(), "yaml: "))
	}
	var errs []string
	bad := func(format string, args ...any) { errs = append(errs, fmt.Sprintf(format, args...)) }
	if len(c.Kafka.Brokers) == 0 {
		bad("kafka.brokers: at least one broker (host:port) is required")
	}
	if c.Topics.Ledger == "" {
		c.Topics.Ledger = "skuwatch.ledger"
	}
	if c.Topics.DLQ == "" {
		c.Topics.DLQ = "skuwatch.dlq"
	}
	if c.Topics.Exceptions == "" {
		c.Topics.Exceptions = "skuwatch.exceptions"
	}
	switch c.Topics.Changelog {
	case "":
		c.Topics.Changelog = "skuwatch.changelog"
	case "none":
		c.Topics.Changelog = ""
	}
	if c.Groups.Intake == "" {
		c.Groups.Intake = "skuwatch-intake"
	}
	if c.Groups.Processor == "" {
		c.Groups.Processor = "skuwatch-processor"
	}
	for _, s := range c.Stages {
		if s != "intake" && s != "processor" {
			bad("stages: %q is not intake or processor", s)
		}
	}
	if c.runs("intake") && len(c.Topics.Raw) == 0 {
		bad("topics.raw: the intake stage needs the raw topics to read (one per source system)")
	}
	if c.runs("processor") {
		if c.DataDir == "" {
			bad("data_dir: required for the processor stage (one state store per partition)")
		}
		if c.Rules == "" {
			bad("rules: a rule file is required for the processor stage")
		}
		pg := &c.Sinks.Postgres
		if pg.DSNEnv != "" {
			if pg.DSN != "" {
				bad("sinks.postgres: dsn and dsn_env exclude each other")
			} else if pg.DSN = os.Getenv(pg.DSNEnv); pg.DSN == "" {
				bad("sinks.postgres.dsn_env: environment variable %s is empty or unset", pg.DSNEnv)
			}
		}
		if pg.DSN != "" {
			if _, err := pgconn.ParseConfig(pg.DSN); err != nil {
				bad("sinks.postgres: %v", err)
			}
		}
		if c.Sinks.JSONLDir == "" && !c.Sinks.KafkaExceptions && pg.DSN == "" {
			bad("sinks: configure jsonl_dir, kafka_exceptions or postgres, or exceptions go nowhere")
		}
	}
	if c.HTTP.Addr == "" {
		c.HTTP.Addr = "127.0.0.1:9090"
	}
	if c.Intake.MaxFutureSkew == "" {
		c.futureSkew = 15 * time.Minute
	} else if c.futureSkew, err = time.ParseDuration(c.Intake.MaxFutureSkew); err != nil || c.futureSkew < 0 {
		bad("intake.max_future_skew: %q is not a duration like 15m", c.Intake.MaxFutureSkew)
	}
	if w := c.Processor.BatchWindow; w != "" {
		if c.batchWindow, err = time.ParseDuration(w); err != nil || c.batchWindow <= 0 {
			bad("processor.batch_window: %q is not a duration like 10ms", w)
		}
	}
	if w := c.Processor.CommitInterval; w != "" {
		if c.commitInterval, err = time.ParseDuration(w); err != nil || c.commitInterval <= 0 {
			bad("processor.commit_interval: %q is not a duration like 500ms", w)
		}
	}
	if r := c.Processor.DedupRetention; r != "" {
		if c.dedupRetention, err = time.ParseDuration(r); err != nil || c.dedupRetention < time.Hour {
			bad("processor.dedup_retention: %q is not a duration of an hour or more like 168h", r)
		}
	}
	switch m := c.Kafka.SASL.Mechanism; m {
	case "", "PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512":
		if m != "" {
			if c.Kafka.SASL.Username == "" {
				bad("kafka.sasl.username: required with %s", m)
			}
			if c.Kafka.SASL.PasswordEnv != "" {
				c.Kafka.SASL.Password = os.Getenv(c.Kafka.SASL.PasswordEnv)
				if c.Kafka.SASL.Password == "" {
					bad("kafka.sasl.password_env: environment variable %s is empty or unset", c.Kafka.SASL.PasswordEnv)
				}
			}
		}
	default:
		bad("kafka.sasl.mechanism: %q is not PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512", m)
	}
	if c.Kafka.TLS.CAFile != "" || c.Kafka.TLS.CertFile != "" {
		c.Kafka.TLS.Enabled = true
	}
	if (c.Kafka.TLS.CertFile == "") != (c.Kafka.TLS.KeyFile == "") {
		bad("kafka.tls: cert_file and key_file go together")
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("%s:\n  %s", path, strings.Join(errs, "\n  "))
	}
	return &c, nil
}

// kafkaClients builds the dialer (readers, groups) and transport (writers)
// that carry TLS and SASL.
func (c *config) kafkaClients() (*kafka.Dialer, *kafka.Transport, error) {
	var tlsCfg *tls.Config
	if t := c.Kafka.TLS; t.Enabled {
		tlsCfg = &tls.Config{ServerName: t.ServerName, InsecureSkipVerify: t.InsecureSkipVerify, MinVersion: tls.VersionTLS12}
		if t.CAFile != "" {
			pem, err := os.ReadFile(t.CAFile)
			if err != nil {
				return nil, nil, fmt.Errorf("kafka.tls.ca_file: %w", err)
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pem) {
				return nil, nil, errors.New("kafka.tls.ca_file: no PEM certificates in it")
			}
			tlsCfg.RootCAs = pool
		}
		if t.CertFile != "" {
			cert, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
			if err != nil {
				return nil, nil, fmt.Errorf("kafka.tls: %w", err)
			}
			tlsCfg.Certificates = []tls.Certificate{cert}
		}
	}
	var mech sasl.Mechanism
	var err error
	switch s := c.Kafka.SASL; s.Mechanism {
	case "PLAIN":
		mech = plain.Mechanism{Username: s.Username, Password: s.Password}
	case "SCRAM-SHA-256":
		mech, err = scram.Mechanism(scram.SHA256, s.Username, s.Password)
	case "SCRAM-SHA-512":
		mech, err = scram.Mechanism(scram.SHA512, s.Username, s.Password)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("kafka.sasl: %w", err)
	}
	dialer := &kafka.Dialer{Timeout: 10 * time.Second, DualStack: true, TLS: tlsCfg, SASLMechanism: mech}
	transport := &kafka.Transport{TLS: tlsCfg, SASL: mech, DialTimeout: 10 * time.Second}
	return dialer, transport, nil
}
