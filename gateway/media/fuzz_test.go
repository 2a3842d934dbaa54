package media

import (
	"bytes"
	"errors"
	"io"
	"mime/multipart"
	"slices"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	"github.com/natter-chat/natter/pkg/protocol"
	"github.com/stretchr/testify/require"
)

// checkName asserts what mediaName promises of a name it accepts.
func checkName(t *testing.T, name string) {
	t.Helper()
	require.NotEmpty(t, name)
	require.LessOrEqual(t, len(name), MaxName)
	require.True(t, utf8.ValidString(name), "%q", name)
	require.False(t, strings.ContainsAny(name, `/\`), "%q", name)
	require.False(t, strings.HasPrefix(name, ".."), "%q", name)
	require.NotEmpty(t, strings.Trim(name, "."), "%q", name)
	for _, r := range name {
		require.False(t, unicode.IsControl(r) || unicode.Is(unicode.Cf, r), "%q", name)
	}
}

// FuzzMediaName: any Content-Disposition header is refused with bad_request or
// gives a plain, bounded, printable name. Seeds: testdata/fuzz/FuzzMediaName.
func FuzzMediaName(f *testing.F) {
	f.Add(`form-data; name="file"; filename="photo.png"`)
	f.Add(`form-data; name="file"; filename*=UTF-8''%E2%80%AEgnp.exe`)
	f.Fuzz(func(t *testing.T, disposition string) {
		name, err := mediaName(disposition)
		if err != nil {
			var pe *protocol.Error
			require.True(t, errors.As(err, &pe), "%v", err)
			require.Equal(t, protocol.CodeBadRequest, pe.Code)
			return
		}
		checkName(t, name)
	})
}

// FuzzMultipartUpload runs an upload body through the gateway's form handling
// (filePart, inspectFile, the size cap) up to where the bytes would be stored: it
// never panics, every refusal is one the client gets as a stable error code, and
// what is accepted has a checked name and a type uploads allow. Seeds:
// testdata/fuzz/FuzzMultipartUpload.
func FuzzMultipartUpload(f *testing.F) {
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	_ = mw.SetBoundary("b0undary")
	_ = mw.WriteField("chatId", "x")
	fw, _ := mw.CreateFormFile("file", "a.png")
	_, _ = fw.Write([]byte("\x89PNG\r\n\x1a\nrest"))
	_ = mw.Close()
	f.Add(buf.Bytes(), "b0undary")
	f.Add([]byte("--x\r\nContent-Disposition: form-data; name=\"file\"; filename=\"../a\"\r\n\r\nhi\r\n--x--\r\n"), "x")
	const limit = 4096
	allowed := make([]string, 0, len(allowedMedia))
	for _, v := range allowedMedia {
		allowed = append(allowed, v)
	}
	f.Fuzz(func(t *testing.T, body []byte, boundary string) {
		if boundary == "" || len(boundary) > 70 {
			return
		}
		mr := multipart.NewReader(io.LimitReader(bytes.NewReader(body), limit+multipartSlack), boundary)
		part, err := filePart(mr)
		var name, ctype string
		if err == nil {
			var head []byte
			name, ctype, head, err = inspectFile(part)
			if err == nil {
				rest := &capReader{r: io.MultiReader(bytes.NewReader(head), part), left: limit}
				_, err = io.Copy(io.Discard, rest)
			}
		}
		if err != nil {
			cerr := uploadError(err, limit)
			var pe *protocol.Error
			var um *unsupportedMedia
			require.True(t, errors.As(cerr, &pe) || errors.As(cerr, &um), "%v", cerr)
			if pe != nil {
				require.NotEqual(t, protocol.CodeInternal, pe.Code, "%v", err)
			}
			return
		}
		checkName(t, name)
		require.True(t, slices.Contains(allowed, ctype), ctype)
	})
}
