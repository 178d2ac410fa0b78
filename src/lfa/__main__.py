from lfa.cli import main

main()
