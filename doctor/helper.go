package doctor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
)

// helperName is the program docker runs for "credsStore": "tollgate".
const helperName = "docker-credential-tollgate"

// clientConfigPath is the docker config the docker CLI (and BuildKit,
// crane, ...) read: $DOCKER_CONFIG/config.json, else ~/.docker/config.json.
func clientConfigPath() string {
	if d := os.Getenv("DOCKER_CONFIG"); d != "" {
		return filepath.Join(d, "config.json")
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return ""
	}
	return filepath.Join(home, ".docker", "config.json")
}

// minterFor finds the tollgate command the helper at helper runs to mint
// ECR tokens, the way the helper does: $TOLLGATE_BIN, else beside the
// helper, else on PATH.
func minterFor(helper string) (string, error) {
	if p := os.Getenv("TOLLGATE_BIN"); p != "" {
		fi, err := os.Stat(p)
		if err != nil || !fi.Mode().IsRegular() || fi.Mode().Perm()&0o111 == 0 {
			return "", fmt.Errorf("TOLLGATE_BIN=%s is not an executable file", p)
		}
		return p + " ($TOLLGATE_BIN)", nil
	}
	if real, err := filepath.EvalSymlinks(helper); err == nil {
		helper = real
	}
	beside := filepath.Join(filepath.Dir(helper), "tollgate")
	if fi, err := os.Stat(beside); err == nil && fi.Mode().IsRegular() && fi.Mode().Perm()&0o111 != 0 {
		return beside, nil
	}
	if p, err := exec.LookPath("tollgate"); err == nil {
		return p, nil
	}
	return "", errors.New("the tollgate command it runs to mint ECR tokens is neither beside it nor on PATH")
}

// checkHelper checks that docker can run the credential helper: it is on
// PATH and answers, and the client's docker config names it.
func checkHelper(ctx context.Context) Result {
	path, err := exec.LookPath(helperName)
	if err != nil {
		return Result{Status: StatusFail, Detail: helperName + " is not on PATH, so docker cannot run it",
			Fix: "install it next to tollgate (e.g. /usr/local/bin) or add its directory to the PATH of the user and service that run docker"}
	}
	out, err := exec.CommandContext(ctx, path, "version").CombinedOutput()
	if err != nil {
		return Result{Status: StatusFail, Detail: fmt.Sprintf("%s version: %v: %s", path, err, strings.TrimSpace(string(out))),
			Fix: "reinstall " + helperName + " (a binary for this OS and architecture, executable by this user)"}
	}
	detail := fmt.Sprintf("%s answers (%s)", path, strings.TrimSpace(string(out)))
	minter, err := minterFor(path)
	if err != nil {
		return Result{Status: StatusFail, Detail: detail + "; " + err.Error(),
			Fix: "install tollgate next to " + helperName + " (both come from the same release), put it on PATH, or set TOLLGATE_BIN"}
	}
	detail += "; it mints ECR tokens with " + minter

	cfgPath := clientConfigPath()
	data, err := os.ReadFile(cfgPath)
	if errors.Is(err, fs.ErrNotExist) {
		return Result{Status: StatusWarn, Detail: detail + "; " + cfgPath + " does not exist, so docker does not use the helper",
			Fix: `write {"credsStore": "tollgate"} to ` + cfgPath + ` (or name registries under "credHelpers")`}
	}
	if err != nil {
		return Result{Status: StatusWarn, Detail: detail + "; " + err.Error(), Fix: "make " + cfgPath + " readable by this user"}
	}
	var c struct {
		CredsStore  string            `json:"credsStore"`
		CredHelpers map[string]string `json:"credHelpers"`
	}
	if err := json.Unmarshal(data, &c); err != nil {
		return Result{Status: StatusFail, Detail: detail + "; " + cfgPath + " is not valid JSON: " + err.Error(), Fix: "fix or replace " + cfgPath}
	}
	var hosts []string
	for h, name := range c.CredHelpers {
		if name == "tollgate" {
			hosts = append(hosts, h)
		}
	}
	sort.Strings(hosts)
	switch {
	case c.CredsStore == "tollgate":
		detail += "; " + cfgPath + ` names it as "credsStore" (every registry)`
		if len(hosts) < len(c.CredHelpers) {
			detail += fmt.Sprintf(", except %d registries that credHelpers sends to other helpers", len(c.CredHelpers)-len(hosts))
		}
	case len(hosts) > 0:
		detail += "; " + cfgPath + " names it in credHelpers for " + strings.Join(hosts, ", ")
	default:
		return Result{Status: StatusWarn, Detail: detail + "; " + cfgPath + " does not name it, so docker does not use it",
			Fix: `set "credsStore": "tollgate" in ` + cfgPath + ` (or name registries under "credHelpers")`}
	}
	return Result{Status: StatusOK, Detail: detail}
}
