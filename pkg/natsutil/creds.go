package natsutil

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/natter-chat/natter/pkg/subjects"
)

// CredsDirName is the directory under the data directory holding the embedded
// server's generated credentials: one file <user>.password (mode 0600) per user in
// Users, the directory itself mode 0700.
const CredsDirName = "nats-credentials"

// CredsDir returns the credentials directory of dataDir.
func CredsDir(dataDir string) string { return filepath.Join(dataDir, CredsDirName) }

// PasswordFile returns the path of user's password file in the credentials dir.
func PasswordFile(dir, user string) string { return filepath.Join(dir, user+".password") }

// Creds are the passwords of the embedded server's users, by user name.
type Creds map[string]string

// LoadOrCreateCreds reads the password of every user in Users from dir, generating
// the missing ones (32 random bytes, base64url) and creating dir (0700) as needed.
// A file readable by others than its owner is refused: the passwords are the keys
// to every chat.
func LoadOrCreateCreds(dir string) (Creds, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("nats credentials: %w", err)
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return nil, fmt.Errorf("nats credentials: %w", err)
	}
	c := Creds{}
	for _, u := range Users {
		p := PasswordFile(dir, u)
		pw, err := readSecretFile(p)
		if errors.Is(err, fs.ErrNotExist) {
			pw, err = newPassword()
			if err == nil {
				err = writeSecretFile(p, pw)
			}
		}
		if err != nil {
			return nil, fmt.Errorf("nats credentials: %w", err)
		}
		c[u] = pw
	}
	return c, nil
}

func newPassword() (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// writeSecretFile creates p with mode 0600 holding secret; it never replaces a file.
func writeSecretFile(p, secret string) error {
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.WriteString(secret + "\n"); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// readSecretFile reads a secret file, trimmed, refusing one that group or others
// may read.
func readSecretFile(p string) (string, error) {
	st, err := os.Stat(p)
	if err != nil {
		return "", err
	}
	if st.Mode().Perm()&0o077 != 0 {
		return "", fmt.Errorf("%s is mode %o: run chmod 600 %s", p, st.Mode().Perm(), p)
	}
	b, err := os.ReadFile(p)
	if err != nil {
		return "", err
	}
	s := strings.TrimSpace(string(b))
	if s == "" {
		return "", fmt.Errorf("%s is empty", p)
	}
	return s, nil
}

// ReadPasswordFile reads a NATS password from p (trimmed). The file must not be
// readable by group or others.
func ReadPasswordFile(p string) (string, error) { return readSecretFile(p) }

// ServerUsers returns the embedded server's users for creds: each with the
// permissions Permissions gives it on subjects s.
func ServerUsers(creds Creds, s subjects.Subjects) []*server.User {
	out := make([]*server.User, 0, len(Users))
	for _, u := range Users {
		out = append(out, &server.User{Username: u, Password: creds[u], Permissions: Permissions(s, u)})
	}
	return out
}
