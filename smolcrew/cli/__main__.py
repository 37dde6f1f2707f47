from smolcrew.cli.app import main

main()
