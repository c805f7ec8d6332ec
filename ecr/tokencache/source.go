package tokencache

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
)

// Source says where credentials for a registry will come from. It is worked
// out from local configuration only (environment variables, and the names
// and metadata of the shared config files), never by resolving credentials,
// so that a warm lookup tells sources apart without a network call. Nothing
// in it is secret.
type Source struct {
	// Key is the stable fingerprint cache entries are bound to.
	Key string
	// Label names the source to humans, as far as it is known without
	// parsing the shared config (package ecr refines it when minting).
	Label string
	// Profile and RoleARN are the per-registry settings that apply.
	Profile string
	RoleARN string
}

// Environment variables that pick the endpoints a token comes from; they
// are part of the fingerprint so that a token from one endpoint (a test
// server, a VPC endpoint) is never served for another.
var endpointEnv = []string{
	"AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_ECR", "AWS_ENDPOINT_URL_ECR_PUBLIC",
	"AWS_ENDPOINT_URL_STS", "AWS_USE_FIPS_ENDPOINT", "AWS_USE_DUALSTACK_ENDPOINT",
}

// fallbackEnv are the settings of the end of the chain (container
// credentials, the instance role), which a profile without credentials
// falls through to.
var fallbackEnv = []string{
	"AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "AWS_CONTAINER_CREDENTIALS_FULL_URI",
	"AWS_EC2_METADATA_SERVICE_ENDPOINT", "AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE",
	"AWS_EC2_METADATA_DISABLED",
}

// ResolveSource mirrors the order of the aws-sdk-go-v2 default credential
// chain (config.LoadDefaultConfig): an explicitly chosen profile, then static
// keys in the environment, then web identity from the environment, then the
// shared config profile (AWS_PROFILE, AWS_DEFAULT_PROFILE, or default), which
// may in turn fall through to container credentials and the instance role. A
// per-registry role ARN is assumed on top.
//
// A profile is fingerprinted by its name and the identity (path, size,
// modification time, inode) of the shared config and credentials files, not
// by their content: editing either file starts new cache entries, and
// nothing secret is ever read. The instance role is keyed as such, not by its
// rotating access keys, so rotation keeps the cache.
func ResolveSource(profile, roleARN string) Source {
	var s Source
	switch {
	case profile != "":
		s = profileSource(profile)
	case os.Getenv("AWS_ACCESS_KEY_ID") != "" && os.Getenv("AWS_SECRET_ACCESS_KEY") != "":
		// The access key id is an identifier, not a secret; the secret key
		// and session token are never read here.
		id := os.Getenv("AWS_ACCESS_KEY_ID")
		s = Source{Key: "env-keys:" + id, Label: "environment key " + id}
	case os.Getenv("AWS_WEB_IDENTITY_TOKEN_FILE") != "":
		s = Source{
			Key:   "web-identity:" + os.Getenv("AWS_ROLE_ARN") + "|" + os.Getenv("AWS_WEB_IDENTITY_TOKEN_FILE"),
			Label: "web identity " + os.Getenv("AWS_ROLE_ARN"),
		}
	default:
		name := os.Getenv("AWS_PROFILE")
		if name == "" {
			name = os.Getenv("AWS_DEFAULT_PROFILE")
		}
		if name == "" {
			name = "default"
		}
		s = profileSource(name)
	}
	s.Profile = profile
	if roleARN != "" {
		s.Key = "assume:" + roleARN + "<-" + s.Key
		s.Label = "role " + roleARN + " assumed with " + s.Label
		s.RoleARN = roleARN
	}
	for _, v := range endpointEnv {
		if val := os.Getenv(v); val != "" {
			s.Key += "|" + v + "=" + val
		}
	}
	return s
}

func profileSource(name string) Source {
	cfgFile, credFile := SharedFiles()
	cfgID, cfgExists := fileIdentity(cfgFile)
	credID, credExists := fileIdentity(credFile)
	key := "profile:" + name + "|" + cfgID + "|" + credID
	for _, v := range fallbackEnv {
		if val := os.Getenv(v); val != "" {
			key += "|" + v + "=" + val
		}
	}
	label := "profile " + name
	if !cfgExists && !credExists {
		label = fallbackLabel()
	}
	return Source{Key: key, Label: label}
}

// fallbackLabel names the end of the chain.
func fallbackLabel() string {
	switch {
	case os.Getenv("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI") != "" || os.Getenv("AWS_CONTAINER_CREDENTIALS_FULL_URI") != "":
		return "container credentials"
	case strings.EqualFold(os.Getenv("AWS_EC2_METADATA_DISABLED"), "true"):
		return "none (AWS_EC2_METADATA_DISABLED=true)"
	}
	return "EC2 instance role"
}

// SharedFiles returns the shared config and credentials files the SDK
// reads: $AWS_CONFIG_FILE and $AWS_SHARED_CREDENTIALS_FILE, else
// ~/.aws/config and ~/.aws/credentials.
func SharedFiles() (cfgFile, credFile string) {
	home, _ := os.UserHomeDir()
	cfgFile = os.Getenv("AWS_CONFIG_FILE")
	if cfgFile == "" {
		cfgFile = filepath.Join(home, ".aws", "config")
	}
	credFile = os.Getenv("AWS_SHARED_CREDENTIALS_FILE")
	if credFile == "" {
		credFile = filepath.Join(home, ".aws", "credentials")
	}
	return cfgFile, credFile
}

// fileIdentity renders a file's path and metadata (never its content).
func fileIdentity(path string) (id string, exists bool) {
	fi, err := os.Stat(path)
	if err != nil {
		return path + ":absent", false
	}
	var ino uint64
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		ino = st.Ino
	}
	return fmt.Sprintf("%s:%d:%d:%d", path, fi.Size(), fi.ModTime().UnixNano(), ino), true
}
