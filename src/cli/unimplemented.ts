// Commands the product will have but this build does not. Each answers "not implemented yet" with
// exit status 2; implementing one means giving it its own file and deleting its line here.
import { Command, CommanderError } from 'commander';

const UNIMPLEMENTED: Record<string, string> = {};

export function unimplementedCommands(): Command[] {
  return Object.entries(UNIMPLEMENTED).map(([name, description]) =>
    new Command(name)
      .description(`${description} (not implemented)`)
      // any flags or arguments get the same answer, rather than a parse error about flags that will exist
      .allowUnknownOption()
      .allowExcessArguments()
      .action(() => {
        throw new CommanderError(2, 'nydusify.notImplemented', 'not implemented yet');
      }),
  );
}
