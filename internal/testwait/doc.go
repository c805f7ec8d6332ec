// Package testwait is for tests only: it waits for a condition that another
// goroutine or process makes true, polling instead of sleeping a fixed time,
// and fails the test with the condition's last answer when time runs out.
package testwait
