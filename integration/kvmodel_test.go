//go:build integration

package integration

import (
	"fmt"
	"sort"

	"github.com/anishathalye/porcupine"
)

// kvInput is one operation on one key of the linearizability workload:
// get, put, or compare-and-set on the value.
type kvInput struct {
	Op     byte // 'g', 'p' or 'c'
	Key    string
	Value  string // put and cas: the new value
	Expect string // cas: the value expected ("" for absent)
}

// kvOutput is what the operation returned. Unknown marks an operation
// whose outcome is indeterminate (a timeout or Unavailable): its return is
// set to the end of time, so the checker may place it anywhere after its
// call, including after everything (not applied).
type kvOutput struct {
	Unknown bool
	Value   string // get: the value read ("" for absent)
	OK      bool   // cas: whether the compare held
}

// kvModel is a register per key with compare-and-set; keys are checked
// apart (P-compositionality).
var kvModel = porcupine.Model{
	Partition: func(history []porcupine.Operation) [][]porcupine.Operation {
		byKey := map[string][]porcupine.Operation{}
		for _, op := range history {
			k := op.Input.(kvInput).Key
			byKey[k] = append(byKey[k], op)
		}
		keys := make([]string, 0, len(byKey))
		for k := range byKey {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		out := make([][]porcupine.Operation, 0, len(keys))
		for _, k := range keys {
			out = append(out, byKey[k])
		}
		return out
	},
	Init: func() interface{} { return "" },
	Step: func(state, input, output interface{}) (bool, interface{}) {
		st, in, out := state.(string), input.(kvInput), output.(kvOutput)
		switch in.Op {
		case 'g':
			return out.Value == st, st
		case 'p':
			return true, in.Value
		default: // cas
			held := st == in.Expect
			if out.Unknown {
				if held {
					return true, in.Value
				}
				return true, st
			}
			if out.OK != held {
				return false, st
			}
			if held {
				return true, in.Value
			}
			return true, st
		}
	},
	Equal: func(a, b interface{}) bool { return a.(string) == b.(string) },
	DescribeOperation: func(input, output interface{}) string {
		in, out := input.(kvInput), output.(kvOutput)
		res := ""
		switch in.Op {
		case 'g':
			res = fmt.Sprintf("get(%s) -> %q", in.Key, out.Value)
		case 'p':
			res = fmt.Sprintf("put(%s, %q)", in.Key, in.Value)
		default:
			res = fmt.Sprintf("cas(%s, %q -> %q) -> %v", in.Key, in.Expect, in.Value, out.OK)
		}
		if out.Unknown {
			res += " ?"
		}
		return res
	},
	DescribeState: func(state interface{}) string { return fmt.Sprintf("%q", state.(string)) },
}
