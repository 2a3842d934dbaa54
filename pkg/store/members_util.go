package store

import (
	"iter"
	"slices"
	"strings"
)

// chunks yields s in consecutive pieces of at most n.
func chunks[T any](s []T, n int) iter.Seq[[]T] {
	return slices.Chunk(s, n)
}

func sortMembers(ms []Member) {
	slices.SortFunc(ms, func(a, b Member) int { return strings.Compare(a.UserID, b.UserID) })
}

// internRole returns the constant for a stored role, so that the members of a
// large chat held in memory share two role strings instead of one each.
func internRole(role string) string {
	switch role {
	case RoleAdmin:
		return RoleAdmin
	case RoleMember:
		return RoleMember
	}
	return role
}
