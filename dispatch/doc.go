// Package dispatch is the Dispatcher: it turns every applied Raft entry into
// events on channels and streams them to subscribers, in revision order,
// from a bounded replay window. It is fed by the StateStore's apply hook on
// every member, so a subscriber is served by whichever member it is
// connected to, and all members deliver the same sequence.
//
// See DESIGN.md for the window, the delivery contracts and why a slow
// subscriber can never slow down Apply or the other subscribers.
package dispatch
