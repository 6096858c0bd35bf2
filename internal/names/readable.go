package names

import (
	"fmt"
	"math/rand/v2"
)

// Readable names, MLflow's way: adjective-noun-number, e.g. "brave-ember-417",
// for runs and jobs nobody named, so that they can be told apart and said
// aloud (the program, "python3", names them all alike).
var (
	adjectives = []string{"able", "amber", "bold", "brave", "bright", "calm", "clever", "crisp", "eager", "fair",
		"gentle", "glad", "keen", "kind", "lucky", "merry", "mighty", "nimble", "proud", "quick",
		"quiet", "rare", "sharp", "shiny", "sly", "steady", "swift", "tidy", "vivid", "warm", "wise", "zesty"}
	nouns = []string{"anvil", "badger", "bellows", "cedar", "comet", "crane", "ember", "falcon", "fern", "flame",
		"forge", "hammer", "heron", "ingot", "iron", "lark", "lynx", "maple", "otter", "owl",
		"pine", "quartz", "raven", "river", "smith", "spark", "steel", "stone", "tongs", "willow", "wolf", "wren"}
)

// Readable returns an adjective-noun-number name drawn from n, so a given
// n (a run id's bits) always gives the same name.
func Readable(n uint64) string {
	a := adjectives[n%uint64(len(adjectives))]
	n /= uint64(len(adjectives))
	b := nouns[n%uint64(len(nouns))]
	n /= uint64(len(nouns))
	return fmt.Sprintf("%s-%s-%d", a, b, n%1000)
}

// RandomReadable is Readable of a random number.
func RandomReadable() string { return Readable(rand.Uint64()) }
