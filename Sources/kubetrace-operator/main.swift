// The operator's one executable: the command line (argument-parser) in this target,
// everything it runs in the KubetraceOperator library.
await KubetraceCLI.main()
