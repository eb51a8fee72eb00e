from genwire.cli import main

main()
