from a3bench.cli import main

main()
