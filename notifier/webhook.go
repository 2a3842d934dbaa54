package notifier

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/natter-chat/natter/pkg/lifecycle"
)

// Webhook requests. Each is a POST of one Notification as JSON with
//
//	Content-Type: application/json
//	Natter-Notification-Id: <Notification.ID>
//	Natter-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>
//
// The receiver recomputes the HMAC over the timestamp, a dot and the raw body with
// the shared secret, compares it in constant time, and rejects a timestamp far from
// its clock (Verify does all three), so a captured request cannot be replayed later.
// Any 2xx answer is success. Network errors, timeouts, 408, 429 and 5xx are retried
// with backoff; other answers are final. A notification that is not delivered goes to
// NATTER_DLQ, from which `natter notify replay` sends it again.
const (
	SignatureHeader = "Natter-Signature"
	IDHeader        = "Natter-Notification-Id"
)

// Errors of Verify.
var (
	// ErrBadSignature: the header is malformed or no v1 signature matches.
	ErrBadSignature = errors.New("notifier: bad webhook signature")
	// ErrStaleSignature: the signed timestamp is outside the tolerance.
	ErrStaleSignature = errors.New("notifier: webhook signature timestamp outside tolerance")
)

// Sign returns the Natter-Signature header value for body signed at t.
func Sign(secret, body []byte, t time.Time) string {
	ts := strconv.FormatInt(t.Unix(), 10)
	return "t=" + ts + ",v1=" + mac(secret, ts, body)
}

func mac(secret []byte, ts string, body []byte) string {
	h := hmac.New(sha256.New, secret)
	h.Write([]byte(ts))
	h.Write([]byte("."))
	h.Write(body)
	return hex.EncodeToString(h.Sum(nil))
}

// Verify checks a Natter-Signature header value against body and secret, and that
// its timestamp is within tolerance of now. It returns ErrBadSignature or
// ErrStaleSignature. Receivers written in Go can use it as is.
func Verify(secret, body []byte, header string, now time.Time, tolerance time.Duration) error {
	var ts string
	var sigs []string
	for _, part := range strings.Split(header, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok {
			return ErrBadSignature
		}
		switch k {
		case "t":
			ts = v
		case "v1":
			sigs = append(sigs, v)
		}
	}
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil || len(sigs) == 0 {
		return ErrBadSignature
	}
	want := []byte(mac(secret, ts, body))
	ok := false
	for _, s := range sigs {
		if hmac.Equal([]byte(s), want) {
			ok = true
		}
	}
	if !ok {
		return ErrBadSignature
	}
	if d := now.Sub(time.Unix(sec, 0)); d > tolerance || d < -tolerance {
		return ErrStaleSignature
	}
	return nil
}

// webhook posts notifications to one URL.
type webhook struct {
	url    string
	secret []byte
	client *http.Client
	cfg    *Config
}

func newWebhook(cfg *Config, secret []byte) *webhook {
	return &webhook{url: cfg.WebhookURL, secret: secret, cfg: cfg, client: &http.Client{
		Timeout: cfg.WebhookTimeout,
		// A redirect is an answer, not a new target: a signed POST is not re-sent.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}
}

// statusError is a non-2xx answer.
type statusError struct{ status int }

func (e *statusError) Error() string { return fmt.Sprintf("webhook answered HTTP %d", e.status) }

// retryable reports whether another attempt may succeed after err.
func retryable(err error) bool {
	var se *statusError
	if errors.As(err, &se) {
		return se.status == http.StatusRequestTimeout || se.status == http.StatusTooManyRequests || se.status >= 500
	}
	return true // network error, timeout
}

// post makes one attempt. It returns the receiver's answer to a 2xx (at most
// maxAnswer bytes): it may name push tokens that are no longer valid (invalidAnswer).
func (w *webhook) post(ctx context.Context, id string, body []byte) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.url, bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("webhook request: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "natter-notifier")
	req.Header.Set(IDHeader, id)
	req.Header.Set(SignatureHeader, Sign(w.secret, body, time.Now()))
	resp, err := w.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("webhook: %w", err)
	}
	answer, _ := io.ReadAll(io.LimitReader(resp.Body, maxAnswer))
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return nil, &statusError{status: resp.StatusCode}
	}
	return answer, nil
}

// maxAnswer bounds the part of a webhook answer that is read and parsed.
const maxAnswer = 64 << 10

// deliver tries body up to Attempts times with backoff, calling progress before each
// attempt. It returns the attempts made and nil, or the last error.
func (w *webhook) deliver(ctx context.Context, id string, body []byte, progress func()) (int, error) {
	attempts, _, err := w.deliverAnswer(ctx, id, body, progress)
	return attempts, err
}

// deliverAnswer is deliver that also returns the answer of the successful attempt.
func (w *webhook) deliverAnswer(ctx context.Context, id string, body []byte, progress func()) (int, []byte, error) {
	var (
		attempts int
		answer   []byte
	)
	err := lifecycle.Retry(ctx, lifecycle.Backoff{Initial: w.cfg.Backoff, Max: w.cfg.MaxBackoff, MaxTries: uint(w.cfg.Attempts)},
		func() error {
			attempts++
			if progress != nil {
				progress()
			}
			a, err := w.post(ctx, id, body)
			if err != nil && !retryable(err) {
				return lifecycle.Permanent(err)
			}
			answer = a
			return err
		}, nil)
	if err != nil {
		return attempts, nil, err
	}
	return attempts, answer, nil
}
