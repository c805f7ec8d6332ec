//go:build !clouddrivers

package main

const cloudDrivers = false
