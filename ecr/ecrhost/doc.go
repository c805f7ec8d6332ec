// Package ecrhost recognises Amazon ECR registry hosts in every AWS
// partition (commercial, China, GovCloud, EUSC, the ISO partitions), their
// FIPS and dual-stack forms and ECR Public, and rejects look-alikes. It uses
// the standard library only, so the credential helper's warm path can link
// it without the AWS SDK.
package ecrhost
