//go:build !linux

package telemetry

import "os"

// willNeed is a hint the platform does not take: reads wait as they come.
func willNeed(*os.File, []byteRange) {}
