from filerelay.cli.main import main

main()
