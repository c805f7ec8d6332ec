package doctor

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"strings"
	"syscall"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/feature/ec2/imds"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	"github.com/aws/smithy-go"
	"github.com/aws/smithy-go/logging"
)

const hopLimitFix = "IMDSv2 answers the token request with an IP hop limit of 1 by default, which does not reach a container behind a bridge network: set it to 2 (aws ec2 modify-instance-metadata-options --instance-id ID --http-put-response-hop-limit 2 --http-tokens required, or HttpPutResponseHopLimit: 2 in the launch template), or run the container with host networking"

// inContainer guesses whether this process runs in a container.
func inContainer() bool {
	for _, f := range []string{"/.dockerenv", "/run/.containerenv"} {
		if _, err := os.Stat(f); err == nil {
			return true
		}
	}
	if os.Getenv("KUBERNETES_SERVICE_HOST") != "" {
		return true
	}
	b, _ := os.ReadFile("/proc/1/cgroup")
	for _, w := range []string{"docker", "kubepods", "containerd", "libpod", "lxc"} {
		if strings.Contains(string(b), w) {
			return true
		}
	}
	return false
}

// isTimeout reports whether err is a timeout. The IMDS client wraps some
// errors in a type that does not unwrap, so the message is consulted too.
func isTimeout(err error) bool {
	var ne net.Error
	if errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout()) {
		return true
	}
	msg := err.Error()
	return strings.Contains(msg, "timeout awaiting response headers") || strings.Contains(msg, "context deadline exceeded") ||
		strings.Contains(msg, "Client.Timeout exceeded") || strings.Contains(msg, "i/o timeout")
}

// isRefused reports whether err is a refused connection (see isTimeout).
func isRefused(err error) bool {
	return errors.Is(err, syscall.ECONNREFUSED) || strings.Contains(err.Error(), "connect: connection refused")
}

// awsChecks runs imds, aws-credentials and aws-identity. IMDS runs beside
// the credential chain; identity needs the credentials.
func (d *run) awsChecks(ctx context.Context) []Result {
	imdsCh := make(chan Result, 1)
	go func() { imdsCh <- d.check(ctx, "imds", "", checkIMDS) }()

	var awsCfg aws.Config
	var credsOK bool
	creds := d.check(ctx, "aws-credentials", "", func(ctx context.Context) Result {
		var r Result
		awsCfg, r = checkCredentials(ctx)
		credsOK = r.Status == StatusOK
		return r
	})
	identity := Result{Name: "aws-identity", Status: StatusSkip, Detail: "no AWS credentials to ask STS about"}
	if credsOK {
		identity = d.check(ctx, "aws-identity", "", func(ctx context.Context) Result { return checkIdentity(ctx, awsCfg) })
	}
	im := <-imdsCh
	// IMDS matters only when the credentials come from the instance role
	// (or when there are none, as the instance role is the last resort).
	if im.Status == StatusFail && credsOK && !strings.Contains(creds.Detail, "instance role") {
		im.Status = StatusWarn
		im.Detail += " (not needed now: the credentials come from elsewhere)"
	}
	return []Result{im, creds, identity}
}

func checkIMDS(ctx context.Context) Result {
	if strings.EqualFold(os.Getenv("AWS_EC2_METADATA_DISABLED"), "true") {
		return Result{Status: StatusSkip, Detail: "disabled by AWS_EC2_METADATA_DISABLED=true: the EC2 instance role is not used"}
	}
	endpoint := os.Getenv("AWS_EC2_METADATA_SERVICE_ENDPOINT")
	if endpoint == "" {
		endpoint = "http://169.254.169.254"
	}
	client := imds.New(imds.Options{
		EnableFallback: aws.FalseTernary, // IMDSv2 only: that is what is checked
		Retryer:        aws.NopRetryer{},
	})
	out, err := client.GetMetadata(ctx, &imds.GetMetadataInput{Path: "instance-id"})
	if err == nil {
		id, _ := io.ReadAll(io.LimitReader(out.Content, 256))
		out.Content.Close()
		return Result{Status: StatusOK, Detail: fmt.Sprintf("IMDSv2 at %s answers: instance %s", endpoint, strings.TrimSpace(string(id)))}
	}
	var re interface{ HTTPStatusCode() int }
	switch {
	case isTimeout(err):
		r := Result{Status: StatusFail, Detail: fmt.Sprintf("IMDSv2 at %s did not answer in time", endpoint)}
		if inContainer() {
			r.Detail += " from inside this container"
			r.Fix = hopLimitFix
		} else {
			r.Fix = "on EC2, check that the instance metadata service is enabled (--http-endpoint enabled) and that no firewall drops traffic to it; if this runs in a container: " + hopLimitFix
		}
		return r
	case isRefused(err):
		return Result{Status: StatusFail, Detail: fmt.Sprintf("IMDSv2 at %s refused the connection", endpoint), Fix: "this is not an EC2 instance, or its metadata service is disabled (aws ec2 modify-instance-metadata-options --http-endpoint enabled); elsewhere give credentials with AWS_PROFILE or AWS_ACCESS_KEY_ID, or set AWS_EC2_METADATA_DISABLED=true"}
	case errors.As(err, &re) && (re.HTTPStatusCode() == 401 || re.HTTPStatusCode() == 403 || re.HTTPStatusCode() == 405):
		return Result{Status: StatusFail, Detail: fmt.Sprintf("IMDSv2 at %s rejected the request (HTTP %d)", endpoint, re.HTTPStatusCode()), Fix: "a proxy between this host and IMDS may be in the way (IMDS refuses requests with X-Forwarded-For), or IMDS is disabled for this instance"}
	}
	return Result{Status: StatusFail, Detail: fmt.Sprintf("IMDSv2 at %s: %s", endpoint, innermost(err)), Fix: "check that the instance metadata service is enabled and reachable"}
}

// sourceName says in plain words which provider of the default chain
// produced the credentials.
func sourceName(src string) string {
	switch {
	case strings.HasPrefix(src, "EnvConfigCredentials"):
		return "environment variables (AWS_ACCESS_KEY_ID)"
	case strings.HasPrefix(src, "SharedConfigCredentials"):
		return "shared credentials file (" + strings.TrimSpace(strings.TrimPrefix(src, "SharedConfigCredentials:")) + ")"
	case strings.HasPrefix(src, "EC2RoleProvider"):
		return "EC2 instance role (IMDS)"
	case strings.HasPrefix(src, "WebIdentityCredentials"):
		return "web identity (IRSA: AWS_ROLE_ARN and AWS_WEB_IDENTITY_TOKEN_FILE)"
	case strings.HasPrefix(src, "AssumeRoleProvider"):
		return "role assumed from a profile (role_arn in the shared config)"
	case strings.HasPrefix(src, "CredentialsEndpointProvider"):
		return "container credentials endpoint (ECS task role or EKS Pod Identity)"
	case strings.HasPrefix(src, "SSOProvider"):
		return "IAM Identity Center (SSO) profile"
	case strings.HasPrefix(src, "ProcessProvider"):
		return "credential_process of a profile"
	case src == "":
		return "an unnamed provider"
	}
	return src
}

func checkCredentials(ctx context.Context) (aws.Config, Result) {
	cfg, err := awsconfig.LoadDefaultConfig(ctx, awsconfig.WithRetryMaxAttempts(1), awsconfig.WithLogger(logging.Nop{}))
	if err != nil {
		return cfg, Result{Status: StatusFail, Detail: "the AWS configuration does not load: " + innermost(err), Fix: "fix the shared config file (AWS_CONFIG_FILE, ~/.aws/config) or the profile named by AWS_PROFILE"}
	}
	creds, err := cfg.Credentials.Retrieve(ctx)
	if err != nil {
		r := Result{Status: StatusFail, Detail: "the AWS default credential chain found no credentials (environment, shared files, web identity, container endpoint, EC2 instance role): " + innermost(err),
			Fix: "attach an instance role (instance profile) to this EC2 instance, or set AWS_PROFILE, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"}
		var oe *smithy.OperationError
		if isTimeout(err) || (errors.As(err, &oe) && oe.Service() == "ec2imds") {
			r.Detail = "the chain fell through to the EC2 instance role and the metadata service did not give credentials: " + innermost(err)
			r.Fix = "see the imds check; " + r.Fix
		}
		return cfg, r
	}
	detail := fmt.Sprintf("found by the default chain: %s, access key %s", sourceName(creds.Source), creds.AccessKeyID)
	if creds.CanExpire {
		detail += fmt.Sprintf(", expiring %s", creds.Expires.UTC().Format("2006-01-02T15:04:05Z"))
	}
	return cfg, Result{Status: StatusOK, Detail: detail}
}

func checkIdentity(ctx context.Context, cfg aws.Config) Result {
	client := sts.NewFromConfig(cfg, func(o *sts.Options) {
		if o.Region == "" {
			o.Region = "us-east-1"
		}
		o.RetryMaxAttempts = 1
	})
	out, err := client.GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{})
	if err != nil {
		var apiErr smithy.APIError
		if errors.As(err, &apiErr) {
			switch apiErr.ErrorCode() {
			case "InvalidClientTokenId", "SignatureDoesNotMatch", "ExpiredToken", "AccessDenied", "AccessDeniedException", "UnrecognizedClientException":
				return Result{Status: StatusFail, Detail: fmt.Sprintf("STS refused the credentials: %s: %s", apiErr.ErrorCode(), apiErr.ErrorMessage()),
					Fix: "the keys are wrong, expired or revoked: rotate them, or check the instance role; on a clock that is off by minutes, sync the time (chrony)"}
			}
		}
		if isTimeout(err) {
			return Result{Status: StatusFail, Detail: "STS did not answer in time", Fix: "check network access to the STS endpoint (a VPC endpoint for sts, or AWS_STS_REGIONAL_ENDPOINTS=regional with a region set)"}
		}
		return Result{Status: StatusFail, Detail: "STS GetCallerIdentity failed: " + innermost(err), Fix: "check network access to the STS endpoint"}
	}
	return Result{Status: StatusOK, Detail: fmt.Sprintf("%s (account %s)", aws.ToString(out.Arn), aws.ToString(out.Account))}
}

// innermost returns the message of the deepest wrapped error: for SDK errors
// the cause rather than the operation banner.
// A URL error (method, URL and the network failure) is as deep as it goes.
func innermost(err error) string {
	for {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue
			break
		}
		next := errors.Unwrap(err)
		if next == nil {
			break
		}
		err = next
	}
	return strings.Join(strings.Fields(err.Error()), " ")
}
