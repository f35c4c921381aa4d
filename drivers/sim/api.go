package sim

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/droverhq/drover/cluster"
)

// Wire types of the HTTP+JSON API (version 1). The server and the driver share
// them; see server.go for the routes.

// maxBodyBytes bounds request bodies: every valid body is a few hundred bytes.
const maxBodyBytes = 64 << 10

// timeHeader carries the model time of every answer, so a client keeps its
// clock in step with the server's.
const timeHeader = "X-Sim-Time"

// StartMigrationRequest is the body of POST /v1/migrations.
type StartMigrationRequest struct {
	VM string `json:"vm"`
	// From is where the caller believes the VM is ("" = wherever it is).
	From string `json:"from,omitempty"`
	To   string `json:"to"`
}

func (r *StartMigrationRequest) validate() error {
	if !validName(r.VM) {
		return errorf(KindBadRequest, "", "vm: invalid name %q (%s)", r.VM, nameFix)
	}
	if !validName(r.To) {
		return errorf(KindBadRequest, "", "to: invalid name %q (%s)", r.To, nameFix)
	}
	if r.From != "" && !validName(r.From) {
		return errorf(KindBadRequest, "", "from: invalid name %q (%s)", r.From, nameFix)
	}
	return nil
}

// StartMigrationResponse answers POST /v1/migrations. Migration is empty when
// Outcome is already_there.
type StartMigrationResponse struct {
	Outcome   StartOutcome    `json:"outcome"`
	Migration MigrationStatus `json:"migration"`
}

// ClockResponse answers GET /v1/clock.
type ClockResponse struct {
	// Now is the model time; Start the model time at which the server started.
	Now   time.Time `json:"now"`
	Start time.Time `json:"start"`
	// Scale is model seconds per wall second.
	Scale float64 `json:"scale"`
}

// PauseRequest is the optional body of POST /v1/nodes/{node}/pause.
type PauseRequest struct {
	// Owner is the mark the pause carries (drivers.PauseMark of the run).
	Owner string `json:"owner,omitempty"`
}

// ReadyResponse answers GET /v1/nodes/{node}/ready.
type ReadyResponse struct {
	Ready  bool              `json:"ready"`
	State  cluster.NodeState `json:"state"`
	BootID string            `json:"boot_id"`
}

// UpdatesResponse answers GET /v1/nodes/{node}/updates.
type UpdatesResponse struct {
	Pending           []cluster.Update `json:"pending"`
	InstalledInactive []cluster.Update `json:"installed_inactive"`
}

// ErrorResponse is the body of every error answer.
type ErrorResponse struct {
	Error string    `json:"error"`
	Kind  ErrorKind `json:"kind"`
	// Reason says why a request was rejected (kind rejected).
	Reason string `json:"reason,omitempty"`
}

// decodeStrict decodes exactly one JSON value into v, refusing unknown fields
// and trailing data.
func decodeStrict(data []byte, v any) error {
	if len(data) > maxBodyBytes {
		return errorf(KindBadRequest, "", "body larger than %d bytes", maxBodyBytes)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return errorf(KindBadRequest, "", "invalid JSON body: %v", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return errorf(KindBadRequest, "", "invalid JSON body: data after the JSON value")
	}
	return nil
}

// readBody reads at most maxBodyBytes+1 bytes of a request body.
func readBody(r io.Reader) ([]byte, error) {
	data, err := io.ReadAll(io.LimitReader(r, maxBodyBytes+1))
	if err != nil {
		return nil, errorf(KindBadRequest, "", "read body: %v", err)
	}
	return data, nil
}

// emptyBody accepts a missing body or {} for requests that take no arguments.
func emptyBody(data []byte) error {
	if len(bytes.TrimSpace(data)) == 0 {
		return nil
	}
	var v struct{}
	if err := decodeStrict(data, &v); err != nil {
		return errorf(KindBadRequest, "", "this request takes no body or {}: %v", err)
	}
	return nil
}

func statusOf(kind ErrorKind) int {
	switch kind {
	case KindNotFound:
		return 404
	case KindRejected:
		return 409
	case KindBadRequest:
		return 400
	case KindUnavailable:
		return 503
	}
	return 500
}

func asModelError(err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	return &Error{Kind: KindInternal, Msg: fmt.Sprintf("internal error: %v", err)}
}
