package main

import (
	"context"
	"fmt"
	"io"
	"os"

	"github.com/docker/docker-credential-helpers/credentials"

	"github.com/spacelift-io/tollgate/credhelper"
	"github.com/spacelift-io/tollgate/dockerconfig"
	"github.com/spacelift-io/tollgate/internal/buildinfo"
	"github.com/spacelift-io/tollgate/internal/helperlog"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	credentials.Name = "docker-credential-tollgate"
	credentials.Package = "github.com/spacelift-io/tollgate"
	credentials.Version = buildinfo.String()
	if len(args) != 1 {
		fmt.Fprintf(stderr, "usage: %s store|get|erase|list|version\n", credentials.Name)
		return 1
	}
	switch args[0] {
	case "-v", "--version":
		_ = credentials.PrintVersion(stdout)
		return 0
	case "-h", "--help":
		fmt.Fprintf(stdout, "usage: %s store|get|erase|list|version\n", credentials.Name)
		return 0
	}

	log, closeLog := helperlog.FromEnv(credentials.Name, stderr)
	defer closeLog()
	// No signal handling here: a killed warm get leaves nothing behind (cache
	// writes are atomic, locks die with the process), and installing handlers
	// costs start-up time. The mint path, which runs a child, handles them.
	ctx := context.Background()

	// The warm path reads the token cache with the standard library only;
	// a miss runs `tollgate ecr-token`, which links the AWS SDK. A problem
	// with the cache settings (no cache directory, a broken
	// $TOLLGATE_CONFIG) fails ECR lookups only, with its reason: logins for
	// other registries do not need them.
	lookup, lookupErr := cacheLookup()
	tokens := &cachedTokens{lookup: lookup, err: lookupErr, log: log, stderr: stderr}
	// Likewise a config dir that cannot be used ($SPACELIFT_DOCKER_CONFIG_DIR
	// relative) fails the logins only, with its reason; ECR hosts still work.
	var logins credhelper.LoginStore
	if store, err := dockerconfig.FromEnv("tollgate"); err != nil {
		logins = unusableLogins{err}
	} else {
		store.MintedByCaller = credhelper.IsECR // list runs no helper (no AWS call) for ECR hosts
		logins = store
	}
	helper := credhelper.NewHelper(&credhelper.Resolver{ECR: tokens, Logins: logins, Log: log}).WithContext(ctx)
	if err := credentials.HandleCommand(helper, args[0], stdin, stdout); err != nil {
		// The protocol puts the message on stdout; docker shows it.
		fmt.Fprintln(stdout, err)
		if !credentials.IsErrCredentialsNotFound(err) {
			log.Error(args[0]+" failed", "err", err.Error())
		}
		return 1
	}
	return 0
}

// unusableLogins stands for a config dir that cannot be used: every login
// operation fails with why, rather than answering "not found" and letting
// docker pull anonymously.
type unusableLogins struct{ err error }

var _ credhelper.LoginStore = unusableLogins{}

func (u unusableLogins) Get(context.Context, string) (string, string, error) {
	return "", "", u.err
}
func (u unusableLogins) Put(context.Context, string, string, string) error { return u.err }
func (u unusableLogins) Erase(context.Context, string) error               { return u.err }
func (u unusableLogins) List(context.Context) (map[string]string, error)   { return nil, u.err }
