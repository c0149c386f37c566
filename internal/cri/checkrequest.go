package cri

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/cradle-runtime/cradle/internal/errdefs"
)

// The walk that applies limits.go's rules to a request, field by field.

// checkRequest checks req against every bound; rpc names the call in the
// message.
func checkRequest(rpc string, req any) error {
	m, ok := req.(proto.Message)
	if !ok || m == nil {
		return nil
	}
	if err := checkMessage(m.ProtoReflect(), ""); err != nil {
		return errdefs.InvalidArgument("%s: %v", rpc, err)
	}
	return nil
}

func checkMessage(m protoreflect.Message, path string) error {
	var err error
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		err = checkField(fd, v, join(path, string(fd.Name())))
		return err == nil
	})
	if err != nil {
		return err
	}
	if err := checkMetadata(m, path); err != nil {
		return err
	}
	return checkProcess(m, path)
}

func checkField(fd protoreflect.FieldDescriptor, v protoreflect.Value, path string) error {
	r, ok := fieldRules[fd.FullName()]
	if !ok {
		r = defaultRule
	}
	switch {
	case fd.IsMap():
		mp := v.Map()
		if r.items >= 0 && mp.Len() > r.items {
			return fmt.Errorf("%s has %d entries, over the limit of %d", path, mp.Len(), r.items)
		}
		var err error
		mp.Range(func(k protoreflect.MapKey, mv protoreflect.Value) bool {
			if fd.MapKey().Kind() == protoreflect.StringKind {
				err = checkString(r.str, k.String(), path+" key")
			}
			if err == nil {
				err = checkValue(fd.MapValue(), r.val, mv, fmt.Sprintf("%s[%q]", path, clip(k.String())))
			}
			return err == nil
		})
		return err
	case fd.IsList():
		l := v.List()
		if r.items >= 0 && l.Len() > r.items {
			return fmt.Errorf("%s has %d items, over the limit of %d", path, l.Len(), r.items)
		}
		for i := range l.Len() {
			if err := checkValue(fd, r.str, l.Get(i), fmt.Sprintf("%s[%d]", path, i)); err != nil {
				return err
			}
		}
		return nil
	}
	return checkValue(fd, r.str, v, path)
}

func checkValue(fd protoreflect.FieldDescriptor, r strRule, v protoreflect.Value, path string) error {
	switch fd.Kind() {
	case protoreflect.StringKind:
		return checkString(r, v.String(), path)
	case protoreflect.BytesKind:
		return checkString(r, string(v.Bytes()), path)
	case protoreflect.MessageKind, protoreflect.GroupKind:
		return checkMessage(v.Message(), path)
	}
	return nil
}

func checkString(r strRule, s, path string) error {
	if len(s) > r.max {
		return fmt.Errorf("%s (%s) is %d bytes, over the limit of %d", path, r.what, len(s), r.max)
	}
	if r.bad != nil {
		if c := r.bad(s); c != "" {
			return fmt.Errorf("%s (%s) %q %s", path, r.what, clip(s), c)
		}
	}
	return nil
}

// checkMetadata bounds the labels plus annotations of one object.
func checkMetadata(m protoreflect.Message, path string) error {
	n := 0
	for _, name := range []protoreflect.Name{"labels", "annotations"} {
		fd := m.Descriptor().Fields().ByName(name)
		if fd == nil || !fd.IsMap() {
			continue
		}
		m.Get(fd).Map().Range(func(k protoreflect.MapKey, v protoreflect.Value) bool {
			n += len(k.String()) + len(v.String())
			return true
		})
	}
	if n > MaxMetadataBytes {
		return fmt.Errorf("%slabels and annotations take %d bytes, over the limit of %d", prefix(path), n, MaxMetadataBytes)
	}
	return nil
}

// checkProcess bounds what one exec carries: the command and arguments
// plus the environment of a container, or the command of an exec.
func checkProcess(m protoreflect.Message, path string) error {
	n := 0
	fields := m.Descriptor().Fields()
	for _, name := range []protoreflect.Name{"command", "args", "cmd"} {
		if fd := fields.ByName(name); fd != nil && fd.IsList() && fd.Kind() == protoreflect.StringKind {
			l := m.Get(fd).List()
			for i := range l.Len() {
				n += len(l.Get(i).String()) + 1
			}
		}
	}
	if fd := fields.ByName("envs"); fd != nil && fd.IsList() && fd.Message() != nil {
		l := m.Get(fd).List()
		for i := range l.Len() {
			kv := l.Get(i).Message()
			entry := 1 // NAME=value
			kv.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
				if fd.Kind() == protoreflect.BytesKind {
					entry += len(v.Bytes())
				} else {
					entry += len(v.String())
				}
				return true
			})
			if entry > MaxArgLen {
				return fmt.Errorf("%senvs[%d] is %d bytes as NAME=value, over the limit of %d", prefix(path), i, entry, MaxArgLen)
			}
			n += entry + 1
		}
	}
	if n > MaxProcessBytes {
		return fmt.Errorf("%sarguments and environment take %d bytes, over the limit of %d", prefix(path), n, MaxProcessBytes)
	}
	return nil
}

func badName(s string) string {
	if strings.ContainsRune(s, '/') {
		return "must not contain '/'"
	}
	return badControl(s)
}

func badKey(s string) string {
	if s == "" {
		return "must not be empty"
	}
	return badControl(s)
}

func badEnvName(s string) string {
	if strings.ContainsRune(s, '=') {
		return "must not contain '='"
	}
	return badKey(s)
}

func badNUL(s string) string {
	if strings.IndexByte(s, 0) >= 0 {
		return "must not contain NUL"
	}
	return ""
}

func badControl(s string) string {
	for _, r := range s {
		if unicode.IsControl(r) {
			return fmt.Sprintf("must not contain a control character (%U)", r)
		}
	}
	return ""
}

// clip keeps a message readable when the string is a megabyte.
func clip(s string) string {
	const max = 64
	if len(s) <= max {
		return s
	}
	cut := max
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}

func join(path, name string) string {
	if path == "" {
		return name
	}
	return path + "." + name
}

func prefix(path string) string {
	if path == "" {
		return ""
	}
	return path + ": "
}
