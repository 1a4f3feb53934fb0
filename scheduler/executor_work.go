package scheduler

import (
	"context"
	"maps"
)

// The executor's work on the engine runs in the background: a pass starts
// it and a later pass sees what it did. Removals, and creations with
// starts, each run at most Parallelism at a time; each image is pulled
// once at a time, outside those bounds. Work that succeeds wakes the loop
// at once, so what it did is reported, and what waited for it (an image,
// a name, host ports) proceeds. A removal, creation or start that fails
// does not: the next pass on the interval or a change reports it and
// tries again, so a failure never spins. A pull wakes the loop either way;
// its backoff keeps a failing image from being pulled again too soon.

// work is a pass's view of the work in flight, read before the pass lists
// the containers.
type work struct {
	creating map[string]bool   // allocations whose container is being created or started
	removing map[string]bool   // containers being removed
	failures map[string]string // allocation -> why its last creation or start failed
	removals int               // removals in flight, and started by this pass
}

// inFlight returns the work in flight, and forgets what concerns
// allocations and images that are no longer the host's.
func (e *Executor) inFlight(mine map[string]*AllocationRecord) *work {
	e.mu.Lock()
	defer e.mu.Unlock()
	for id := range e.failures {
		if mine[id] == nil && !e.creating[id] {
			delete(e.failures, id)
		}
	}
	used := map[string]bool{}
	for _, r := range mine {
		used[r.Run.Image] = true
	}
	for image, s := range e.images {
		if !used[image] && !s.pulling {
			delete(e.images, image)
		}
	}
	return &work{creating: maps.Clone(e.creating), removing: maps.Clone(e.removing),
		failures: maps.Clone(e.failures), removals: len(e.removing)}
}

// image reports whether the image is present. If it is not known to be,
// it starts a pull unless one is in flight or the last one failed less
// than its backoff ago, whose error it then returns.
func (e *Executor) image(ctx context.Context, image string) (present bool, failed error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	s := e.images[image]
	if s == nil {
		s = &imageState{}
		e.images[image] = s
	}
	switch {
	case s.present:
		return true, nil
	case s.pulling:
		return false, nil
	case s.err != nil && e.cfg.Now().Before(s.until):
		return false, s.err
	}
	s.pulling = true
	e.ops.Add(1)
	go e.pull(ctx, image, s)
	return false, nil
}

// pull ensures the image is present; after a failure the image waits,
// with a delay doubling up to MaxPullBackoff, before it is pulled again.
func (e *Executor) pull(ctx context.Context, image string, s *imageState) {
	defer e.ops.Done()
	pctx, cancel := context.WithTimeout(ctx, e.cfg.PullTimeout)
	err := e.rt.EnsureImage(pctx, image)
	cancel()
	now := e.cfg.Now()
	e.mu.Lock()
	s.pulling = false
	switch {
	case err == nil:
		s.present, s.err, s.wait = true, nil, 0
	case ctx.Err() == nil:
		if s.wait == 0 {
			s.wait = e.cfg.PullBackoff
		} else {
			s.wait = min(2*s.wait, e.cfg.MaxPullBackoff)
		}
		s.err, s.until = err, now.Add(s.wait)
	}
	wait := s.wait
	e.mu.Unlock()
	if ctx.Err() != nil {
		return
	}
	if err != nil {
		e.log.Warn("image pull failed", "image", image, "error", err, "retry_in", wait)
	}
	e.poke()
}

// create creates and starts the allocation's container.
func (e *Executor) create(ctx context.Context, r *AllocationRecord) {
	run := r.Run
	spec := ContainerSpec{
		Name: containerName(r), Image: run.Image, Command: run.Command, Args: run.Args, Env: run.Env,
		Ports: run.Ports, Resources: run.Resources, Restart: run.Restart,
		Labels: e.labels(r),
	}
	e.begin(ctx, r.ID, func() error {
		id, err := e.rt.Create(ctx, spec)
		if err != nil {
			// The image may have gone since it was checked: check again
			// before the next attempt.
			e.mu.Lock()
			if s := e.images[run.Image]; s != nil {
				s.present = false
			}
			e.mu.Unlock()
			return err
		}
		e.log.Info("created container", "container", short(id), "alloc", r.ID, "component", r.Component)
		return e.rt.Start(ctx, id)
	})
}

// start starts the allocation's container, created or exited.
func (e *Executor) start(ctx context.Context, r *AllocationRecord, id string) {
	e.begin(ctx, r.ID, func() error { return e.rt.Start(ctx, id) })
}

// begin runs a creation or a start of the allocation's container, and
// records its failure, or forgets the last one once it succeeds.
func (e *Executor) begin(ctx context.Context, alloc string, fn func() error) {
	e.mu.Lock()
	e.creating[alloc] = true
	e.mu.Unlock()
	e.ops.Add(1)
	go func() {
		defer e.ops.Done()
		err := withSlot(ctx, e.createSlots, fn)
		e.mu.Lock()
		delete(e.creating, alloc)
		switch {
		case err == nil:
			delete(e.failures, alloc)
		case ctx.Err() == nil:
			e.failures[alloc] = err.Error()
		}
		e.mu.Unlock()
		if err != nil {
			if ctx.Err() == nil {
				e.log.Warn("starting container failed", "alloc", alloc, "error", err)
			}
			return
		}
		e.poke()
	}()
}

// remove stops and removes a container; one that fails is tried again by
// a later pass.
func (e *Executor) remove(ctx context.Context, c Container) {
	e.log.Info("removing container", "container", short(c.ID), "alloc", c.Labels[LabelAlloc], "component", c.Labels[LabelComponent])
	e.mu.Lock()
	e.removing[c.ID] = true
	e.mu.Unlock()
	e.ops.Add(1)
	go func() {
		defer e.ops.Done()
		err := withSlot(ctx, e.removeSlots, func() error { return e.rt.Remove(ctx, c.ID) })
		e.mu.Lock()
		delete(e.removing, c.ID)
		e.mu.Unlock()
		if err != nil {
			if ctx.Err() == nil {
				e.log.Warn("removing container failed", "container", short(c.ID), "error", err)
			}
			return
		}
		e.poke()
	}()
}

// withSlot runs fn once it holds one of slots' tokens.
func withSlot(ctx context.Context, slots chan struct{}, fn func() error) error {
	select {
	case slots <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() { <-slots }()
	return fn()
}

// poke wakes the loop for another pass.
func (e *Executor) poke() {
	select {
	case e.wake <- struct{}{}:
	default:
	}
}
