package ecr

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials/ec2rolecreds"
	"github.com/aws/aws-sdk-go-v2/credentials/stscreds"
	"github.com/aws/aws-sdk-go-v2/feature/ec2/imds"
	awsecr "github.com/aws/aws-sdk-go-v2/service/ecr"
	"github.com/aws/aws-sdk-go-v2/service/ecrpublic"
	"github.com/aws/aws-sdk-go-v2/service/sts"

	"github.com/spacelift-io/tollgate/ecr/tokencache"
)

// imdsAttempts is how many times a request to the instance metadata service
// is tried.
const (
	imdsAttempts   = 2
	imdsMaxBackoff = 200 * time.Millisecond
)

// awsClients are the SDK clients for one credential source and endpoint
// flavour, built on the first miss and reused by later ones in the process.
type awsClients struct {
	creds aws.CredentialsProvider
	ecr   *awsecr.Client
	pub   *ecrpublic.Client
	sts   *sts.Client
}

// clientsFor loads the AWS configuration for src in the registry's region
// (the default chain, or the registry's profile) and builds the clients.
func (e *Engine) clientsFor(ctx context.Context, reg Registry, src tokencache.Source, info sourceInfo) (*awsClients, error) {
	label := info.label
	key := fmt.Sprintf("%s|%s|%t|%t|%t", src.Key, reg.Region, reg.FIPS, reg.DualStack, reg.Public)
	e.mu.Lock()
	defer e.mu.Unlock()
	if c, ok := e.clients[key]; ok {
		return c, nil
	}
	opts := []func(*awsconfig.LoadOptions) error{awsconfig.WithRegion(reg.Region)}
	if src.Profile != "" {
		opts = append(opts, awsconfig.WithSharedConfigProfile(src.Profile))
	}
	cfg, err := awsconfig.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return nil, &Error{Kind: ErrNoCredentials, Host: reg.Host, Source: label,
			Reason: "cannot load the AWS configuration: " + innermost(err), Fix: fixes[ErrNoCredentials], Err: err}
	}
	if info.instanceRole {
		// The SDK's IMDS client retries a refused or silent IMDS for ~4s
		// (three attempts with up to 1s between them, then again without a
		// session token); one quick retry rides out a blip, and a host
		// without IMDS fails fast.
		imdsClient := imds.NewFromConfig(cfg, func(o *imds.Options) {
			o.Retryer = retry.AddWithMaxBackoffDelay(retry.AddWithMaxAttempts(retry.NewStandard(), imdsAttempts), imdsMaxBackoff)
			o.DisableDefaultMaxBackoff = true
		})
		cfg.Credentials = aws.NewCredentialsCache(ec2rolecreds.New(func(o *ec2rolecreds.Options) { o.Client = imdsClient }))
	}
	c := &awsClients{sts: sts.NewFromConfig(cfg)}
	if src.RoleARN != "" {
		cfg.Credentials = aws.NewCredentialsCache(stscreds.NewAssumeRoleProvider(c.sts, src.RoleARN,
			func(o *stscreds.AssumeRoleOptions) { o.RoleSessionName = "tollgate" }))
		c.sts = sts.NewFromConfig(cfg)
	}
	c.creds = cfg.Credentials
	if reg.Public {
		c.pub = ecrpublic.NewFromConfig(cfg, func(o *ecrpublic.Options) {
			o.Retryer = aws.NopRetryer{} // mint retries with its own budget
		})
	} else {
		c.ecr = awsecr.NewFromConfig(cfg, func(o *awsecr.Options) {
			o.Retryer = aws.NopRetryer{}
			// A custom endpoint (AWS_ENDPOINT_URL_ECR) is taken as is; the
			// SDK refuses FIPS or dual-stack together with one.
			if o.BaseEndpoint == nil {
				if reg.FIPS {
					o.EndpointOptions.UseFIPSEndpoint = aws.FIPSEndpointStateEnabled
				}
				if reg.DualStack {
					o.EndpointOptions.UseDualStackEndpoint = aws.DualStackEndpointStateEnabled
				}
			}
		})
	}
	e.clients[key] = c
	return c, nil
}

// mint gets a new token from AWS, retrying throttling and outages with
// jittered exponential backoff within the retry budget.
// With quick, it makes a single attempt bounded by quickAttemptTimeout.
func (e *Engine) mint(ctx context.Context, req tokencache.Request, quick bool) (*tokencache.Entry, error) {
	reg := req.Registry
	info, err := describe(ctx, req.Source)
	if err != nil {
		var te *Error
		if errors.As(err, &te) {
			te.Host = reg.Host
		}
		return nil, err
	}
	deadline := time.Now().Add(e.budget)
	if quick {
		qctx, cancel := context.WithTimeout(ctx, quickAttemptTimeout)
		defer cancel()
		ctx, deadline = qctx, time.Now()
	}
	for attempt := 0; ; attempt++ {
		ent, err := e.mintOnce(ctx, req, info, deadline)
		if err == nil {
			if attempt > 0 {
				e.log.Info("minted ECR token after retries", "registry", reg.Host, "attempts", attempt+1)
			}
			return ent, nil
		}
		var te *Error
		if !errors.As(err, &te) || !retryable(te.Kind) || ctx.Err() != nil {
			return nil, err
		}
		delay := backoff(attempt)
		if time.Now().Add(delay).After(deadline) {
			e.log.Warn("giving up minting an ECR token: retry budget spent", "registry", reg.Host,
				"attempts", attempt+1, "budget", e.budget, "err", err.Error())
			return nil, err
		}
		e.log.Info("retrying ECR token mint", "registry", reg.Host, "attempt", attempt+1,
			"delay", delay, "err", err.Error())
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, err
		case <-t.C:
		}
	}
}

// backoff is the delay before retry n+1: exponential from 200ms, capped at
// 5s, with equal jitter (half fixed, half random) so that many processes
// that failed together do not retry together.
func backoff(n int) time.Duration {
	d := 200 * time.Millisecond << min(n, 5)
	d = min(d, 5*time.Second)
	return d/2 + rand.N(d/2+1)
}

func (e *Engine) mintOnce(ctx context.Context, req tokencache.Request, info sourceInfo, deadline time.Time) (*tokencache.Entry, error) {
	reg, src := req.Registry, req.Source
	c, err := e.clientsFor(ctx, reg, src, info)
	if err != nil {
		return nil, err
	}
	actx, cancel := context.WithDeadline(ctx, minTime(deadline.Add(attemptTimeout/2), time.Now().Add(attemptTimeout)))
	defer cancel()

	if _, err := c.creds.Retrieve(actx); err != nil {
		v := classifyCredentials(err, info)
		cause := opaqueCause{err}
		e.log.Debug("AWS credentials unavailable", "source", info.label, "err", cause.Error())
		te := newError(v.kind, reg.Host, info.label, oneLine(v.reason, 300), cause)
		if v.kind == ErrNoCredentials && info.fix != "" {
			te.Fix = info.fix
		}
		return nil, te
	}

	var ent *tokencache.Entry
	if reg.Public {
		ent, err = mintPublic(actx, c.pub)
	} else {
		ent, err = mintPrivate(actx, c.ecr)
	}
	if err != nil {
		var te *Error
		if errors.As(err, &te) {
			te.Host, te.Source = reg.Host, info.label
			return nil, te
		}
		v := classifyAPI(err)
		e.log.Debug("GetAuthorizationToken failed", "registry", reg.Host, "err", err.Error())
		return nil, newError(v.kind, reg.Host, info.label, oneLine(v.reason, 300), err)
	}
	ent.Version, ent.Source, ent.Partition, ent.Region, ent.FIPS, ent.Public = tokencache.EntryVersion, src.Key, reg.Partition, reg.Region, reg.FIPS, reg.Public
	ent.MintedAt = time.Now().UTC()

	// Record who the token belongs to. Best effort: the token is good
	// without it, so a failure here is only logged.
	ictx, icancel := context.WithTimeout(ctx, 3*time.Second)
	defer icancel()
	if out, err := c.sts.GetCallerIdentity(ictx, &sts.GetCallerIdentityInput{}); err == nil && out.Arn != nil {
		ent.Identity = *out.Arn
	} else if err != nil {
		e.log.Debug("cannot read the caller identity", "err", err.Error())
	}
	e.log.Info("minted ECR token", "registry", reg.Host, "identity", ent.Identity, "expires_at", ent.ExpiresAt)
	return ent, nil
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

func mintPrivate(ctx context.Context, c *awsecr.Client) (*tokencache.Entry, error) {
	out, err := c.GetAuthorizationToken(ctx, &awsecr.GetAuthorizationTokenInput{})
	if err != nil {
		return nil, err
	}
	if len(out.AuthorizationData) == 0 || out.AuthorizationData[0].AuthorizationToken == nil {
		return nil, badResponse("no authorization data")
	}
	d := out.AuthorizationData[0]
	return decodeToken(*d.AuthorizationToken, d.ExpiresAt)
}

func mintPublic(ctx context.Context, c *ecrpublic.Client) (*tokencache.Entry, error) {
	out, err := c.GetAuthorizationToken(ctx, &ecrpublic.GetAuthorizationTokenInput{})
	if err != nil {
		return nil, err
	}
	if out.AuthorizationData == nil || out.AuthorizationData.AuthorizationToken == nil {
		return nil, badResponse("no authorization data")
	}
	return decodeToken(*out.AuthorizationData.AuthorizationToken, out.AuthorizationData.ExpiresAt)
}

// decodeToken splits ECR's base64 "user:password" token.
func decodeToken(token string, expires *time.Time) (*tokencache.Entry, error) {
	raw, err := base64.StdEncoding.DecodeString(token)
	if err != nil {
		return nil, badResponse("authorization token is not base64")
	}
	user, pass, ok := strings.Cut(string(raw), ":")
	if !ok || user == "" || pass == "" {
		return nil, badResponse("authorization token is not user:password")
	}
	ent := &tokencache.Entry{Username: user, Password: pass}
	if expires != nil {
		ent.ExpiresAt = expires.UTC()
	} else {
		// ECR documents a 12-hour validity; assume less to be safe.
		ent.ExpiresAt = time.Now().Add(6 * time.Hour).UTC()
	}
	return ent, nil
}

func badResponse(why string) error {
	return &Error{Kind: ErrUnavailable, Reason: "unexpected GetAuthorizationToken response: " + why, Fix: fixes[ErrUnavailable]}
}
