package container

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"

	"google.golang.org/protobuf/proto"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/cradle-runtime/cradle/internal/errdefs"
)

// reservation holds a container name in one sandbox. It is done once the
// create that took it has finished; its result then answers kubelet's
// identical retries.
type reservation struct {
	hash string
	done chan struct{}
	id   string // set before done is closed
	err  error
}

// containerName is the name kubelet reads back (dockershim's scheme), unique
// per pod and restart attempt.
func containerName(cfg *runtimeapi.ContainerConfig, pod *runtimeapi.PodSandboxConfig) string {
	cm, pm := cfg.GetMetadata(), pod.GetMetadata()
	return strings.Join([]string{"k8s", cm.GetName(), pm.GetName(), pm.GetNamespace(), pm.GetUid(),
		fmt.Sprint(cm.GetAttempt())}, "_")
}

func nameKey(sandboxID, name string) string { return sandboxID + "/" + name }

// configHash identifies a request for kubelet's retries: the same sandbox
// and a byte-identical config.
func configHash(sandboxID string, cfg *runtimeapi.ContainerConfig) (string, []byte, error) {
	data, err := proto.MarshalOptions{Deterministic: true}.Marshal(cfg)
	if err != nil {
		return "", nil, errdefs.InvalidArgument("container config: %v", err)
	}
	h := sha256.New()
	h.Write([]byte(sandboxID))
	h.Write([]byte{0})
	h.Write(data)
	return hex.EncodeToString(h.Sum(nil)), data, nil
}

// reserve takes the name for a new create (first = true) or returns the
// reservation of an identical request made before. A different request
// for a taken name is ErrAlreadyExists.
func (m *Manager) reserve(key, hash string) (r *reservation, first bool, err error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if r := m.names[key]; r != nil {
		if r.hash == hash {
			return r, false, nil
		}
		owner := "being created"
		select {
		case <-r.done:
			owner = "used by container " + r.id
		default:
		}
		return nil, false, errdefs.AlreadyExists("container name %q in sandbox %s is already %s",
			key[strings.IndexByte(key, '/')+1:], key[:strings.IndexByte(key, '/')], owner)
	}
	r = &reservation{hash: hash, done: make(chan struct{})}
	m.names[key] = r
	return r, true, nil
}

// settle publishes the create's result. A failed create frees the name, so
// a later request starts afresh; waiters still get the error.
func (m *Manager) settle(key string, r *reservation, id string, err error) {
	m.mu.Lock()
	r.id, r.err = id, err
	if err != nil && m.names[key] == r {
		delete(m.names, key)
	}
	m.mu.Unlock()
	close(r.done)
}

// wait returns a reservation's result, or ctx's error first.
func wait(ctx context.Context, r *reservation) (string, error) {
	select {
	case <-r.done:
		return r.id, r.err
	case <-ctx.Done():
		err := fmt.Errorf("create container: %w (it goes on; retry for its result)", ctx.Err())
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			err = errdefs.WithKind(errdefs.ErrDeadlineExceeded, err)
		}
		return "", err
	}
}

// releaseName frees the name of a removed container.
func (m *Manager) releaseName(key, id string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if r := m.names[key]; r != nil && r.id == id {
		delete(m.names, key)
	}
}

func newID() string {
	b := make([]byte, 32)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// doneReservation is the reservation of a container recovered from disk.
func doneReservation(hash, id string) *reservation {
	r := &reservation{hash: hash, id: id, done: make(chan struct{})}
	close(r.done)
	return r
}
