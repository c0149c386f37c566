package image

import "strings"

type challenge struct {
	scheme string // lower case
	params map[string]string
}

// parseChallenges reads WWW-Authenticate values such as
// `Bearer realm="https://auth.example.com/token",service="registry",scope="repository:x:pull"`.
func parseChallenges(values []string) []challenge {
	var out []challenge
	for _, v := range values {
		s := strings.TrimSpace(v)
		for s != "" {
			var scheme string
			scheme, s = token(s)
			if scheme == "" {
				break
			}
			ch := challenge{scheme: strings.ToLower(scheme), params: map[string]string{}}
			s = strings.TrimLeft(s, " ")
			for {
				name, rest := token(s)
				rest = strings.TrimLeft(rest, " ")
				if name == "" || !strings.HasPrefix(rest, "=") {
					break
				}
				val, rest2 := paramValue(strings.TrimLeft(rest[1:], " "))
				ch.params[strings.ToLower(name)] = val
				s = strings.TrimLeft(rest2, " ")
				if !strings.HasPrefix(s, ",") {
					break
				}
				s = strings.TrimLeft(s[1:], " ")
			}
			out = append(out, ch)
			s = strings.TrimLeft(s, ", ")
		}
	}
	return out
}

func token(s string) (string, string) {
	i := strings.IndexFunc(s, func(r rune) bool {
		return r == ' ' || r == '=' || r == ',' || r == '"' || r == '\t'
	})
	if i < 0 {
		return s, ""
	}
	return s[:i], s[i:]
}

func paramValue(s string) (string, string) {
	if !strings.HasPrefix(s, `"`) {
		return token(s)
	}
	var b strings.Builder
	for i := 1; i < len(s); i++ {
		switch s[i] {
		case '\\':
			if i+1 < len(s) {
				i++
				b.WriteByte(s[i])
			}
		case '"':
			return b.String(), s[i+1:]
		default:
			b.WriteByte(s[i])
		}
	}
	return b.String(), ""
}
