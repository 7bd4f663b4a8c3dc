/* napi-build links x86_64-pc-windows-gnu cdylibs with -lnode and needs a libnode.dll to exist.
   Our binding uses napi's dyn-symbols (Node-API resolved at run time from the host .exe), so it
   must import NOTHING from libnode.dll: this empty DLL satisfies the linker, and because no
   libnode.dll exists at run time, any accidental import would make require() fail loudly. */
int nsm_libnode_placeholder;
