package webhook

import (
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Defaults of Config, and the bounds SPEC.md sets.
const (
	// DefaultTimeout bounds one try: connecting, sending, and the answer's
	// status line and headers.
	DefaultTimeout = 10 * time.Second
	// DefaultRetryBackoff is the wait before the first retry; each next
	// wait doubles, up to MaxRetryGap.
	DefaultRetryBackoff = 10 * time.Second
	// MaxRetryGap caps the wait between two tries.
	MaxRetryGap = 10 * time.Minute
	// DefaultGiveUpAfter is how long an event is retried, from when it was
	// recorded.
	DefaultGiveUpAfter = 24 * time.Hour
	// DefaultPollInterval is how often the queue is looked at for events
	// that became due (new ones, retries).
	DefaultPollInterval = time.Second
	// DefaultWorkers is how many deliveries to one URL run at once on a
	// node: enough to send a backlog of 10,000 in seconds when a receiver
	// comes back.
	DefaultWorkers = 32
	// MinSecretBytes is the shortest --webhook-secret accepted.
	MinSecretBytes = 16
)

// Config says where events go and how they are signed. URLs and Secret
// come from flags; the rest are for tests, with zero meaning the default.
type Config struct {
	URLs   []string
	Secret string

	Timeout      time.Duration
	RetryBackoff time.Duration
	GiveUpAfter  time.Duration
	PollInterval time.Duration
	Workers      int

	// Registerer receives the metrics; nil registers none.
	Registerer prometheus.Registerer
	Log        *slog.Logger
}

// Validate says which setting is wrong, in the words of the flags.
func (c Config) Validate() error {
	var errs []error
	for _, u := range c.URLs {
		if err := checkURL(u); err != nil {
			errs = append(errs, err)
		}
	}
	switch {
	case len(c.URLs) > 0 && c.Secret == "":
		errs = append(errs, errors.New("--webhook-url needs --webhook-secret (receivers check each event's signature with it): "+
			"make one with `openssl rand -hex 32` and pass it as PROGRESSD_WEBHOOK_SECRET"))
	case c.Secret != "" && len(c.Secret) < MinSecretBytes:
		errs = append(errs, fmt.Errorf("--webhook-secret is %d bytes; it must be at least %d, or anyone could forge events by guessing it: "+
			"make one with `openssl rand -hex 32` and pass it as PROGRESSD_WEBHOOK_SECRET (on the command line it is visible in the process list)",
			len(c.Secret), MinSecretBytes))
	}
	if c.Timeout < 0 || c.RetryBackoff < 0 || c.GiveUpAfter < 0 || c.PollInterval < 0 || c.Workers < 0 {
		errs = append(errs, errors.New("webhook: Timeout, RetryBackoff, GiveUpAfter, PollInterval and Workers may not be negative"))
	}
	return errors.Join(errs...)
}

// checkURL accepts absolute http and https URLs only.
func checkURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("--webhook-url %q is not a URL: %w", raw, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return fmt.Errorf("--webhook-url %q: only http:// and https:// URLs are accepted (events are POSTed to it)", raw)
	}
	if u.Host == "" {
		return fmt.Errorf("--webhook-url %q has no host; use a full URL such as https://example.com/hooks/progressd", raw)
	}
	return nil
}

func (c Config) withDefaults() Config {
	if c.Timeout == 0 {
		c.Timeout = DefaultTimeout
	}
	if c.RetryBackoff == 0 {
		c.RetryBackoff = DefaultRetryBackoff
	}
	if c.GiveUpAfter == 0 {
		c.GiveUpAfter = DefaultGiveUpAfter
	}
	if c.PollInterval == 0 {
		c.PollInterval = DefaultPollInterval
	}
	if c.Workers == 0 {
		c.Workers = DefaultWorkers
	}
	if c.Log == nil {
		c.Log = slog.New(slog.DiscardHandler)
	}
	return c
}
