import KubetraceOperator

await KubetraceCLI.main()
