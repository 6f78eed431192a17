// Fails fast, with the fix, when a script runs on a Node older than the one the workspace provisions.
const [major = 0, minor = 0] = process.versions.node.split('.').map(Number)
if (major < 22 || (major === 22 && minor < 12)) {
  console.error(
    `nodeledger needs Node >= 22.12 (found ${process.version}); run it through pnpm, which puts the provisioned Node 24 from node_modules/.bin first on PATH`,
  )
  process.exit(1)
}
